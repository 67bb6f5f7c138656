"""The HTTP side: the runtime knobs, `internetarchive` sessions that never retry, and who gets the keys.

Retries are retry.py's alone: every adapter here is mounted with `max_retries=0` (the client's own
archive.org adapter included), so a 503 reaches the one policy instead of being retried underneath it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter

from archive_encoders.archive.errors import ArchiveError
from archive_encoders.archive.redact import protect_secrets
from archive_encoders.archive.retry import RetryPolicy
from archive_encoders.config import with_defaults

ANSWER_DEADLINE_FACTOR = 2


def checked_base_url(base_url: str) -> str:
    """`base_url` when it is an http(s) URL without credentials; ArchiveError (never echoing a
    password) otherwise. A user:password in the URL would reach every log line that names the server."""
    parts = urlsplit(base_url) if isinstance(base_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        shown = redact_url(base_url) if isinstance(base_url, str) else repr(base_url)
        raise ArchiveError(f"archive.base_url: {shown!r} is not an http(s) URL")
    if "@" in parts.netloc:
        raise ArchiveError(
            f"archive.base_url: {redact_url(base_url)!r} holds credentials; put archive.org keys in "
            "ia.ini or IA_ACCESS_KEY_ID/IA_SECRET_ACCESS_KEY, never in the URL"
        )
    return base_url


def redact_url(url: str) -> str:
    """`url` with any user:password before the host replaced by '***'."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    return f"{scheme}://{netloc}{slash}{path}"


@dataclass(frozen=True)
class Runtime:
    """Operational knobs from config["archive"] (defaults: the config schema); they never change what
    is downloaded, so changing them reruns nothing."""

    concurrency: int
    retries: int
    backoff_s: float
    timeout_s: float

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> Runtime:
        cfg = with_defaults("archive", cfg)
        return cls(
            concurrency=int(cfg["concurrency"]),
            retries=int(cfg["retries"]),
            backoff_s=float(cfg["backoff_s"]),
            timeout_s=float(cfg["timeout_s"]),
        )

    @property
    def timeout(self) -> tuple[float, float]:
        """requests' (connect, read) timeout."""
        return (self.timeout_s, self.timeout_s)

    @property
    def deadline_s(self) -> float:
        """The most a whole search page or metadata answer may take: each read within timeout_s is
        not enough, a server may drip one byte at a time."""
        return ANSWER_DEADLINE_FACTOR * self.timeout_s

    def policy(self) -> RetryPolicy:
        return RetryPolicy(self.retries, self.backoff_s)


def credentials_allowed(scheme: str, host: str) -> bool:
    """A user's IA keys (ia.ini or IA_* env) go to archive.org over https only: never in clear text,
    never to a mirror or a test server."""
    host = host.lower()
    return scheme == "https" and (host == "archive.org" or host.endswith(".archive.org"))


def make_session(base_url: str):
    """An `internetarchive.ArchiveSession` aimed at `base_url`, with no retries of its own.

    https://archive.org: the user's ia.ini / IA_ACCESS_KEY_ID+IA_SECRET_ACCESS_KEY are honoured
    (restricted items need them) and registered with the log redaction filter. Any other base URL (a
    mirror, plain http, the tests' fake): no config file is read and no keys are sent. The client cannot
    take a host in its config (it appends '.archive.org'), so the host is set after construction
    (internetarchive 5.12's source, checked against a local fake).
    """
    from internetarchive import ArchiveSession

    parts = urlsplit(checked_base_url(base_url))
    trusted = credentials_allowed(parts.scheme, parts.hostname or "")
    try:
        session = ArchiveSession(
            config={"general": {"secure": parts.scheme == "https"}},
            config_file="" if trusted else "/dev/null",
        )
    except ValueError as err:  # e.g. only one of the two IA_* variables is set
        raise ArchiveError(f"archive.org credentials: {err}") from None
    protect_secrets(
        session.access_key,
        session.secret_key,
        *(str(v) for v in session.config.get("cookies", {}).values() if v),
    )
    if not trusted:
        session.access_key = None
        session.secret_key = None
        session.cookies.clear()
        session.headers["User-Agent"] = session._get_user_agent_string()  # it embeds the access key
    session.host = parts.netloc
    session.protocol = f"{parts.scheme}:"
    session.mount("http://", HTTPAdapter(max_retries=0))
    session.mount("https://", HTTPAdapter(max_retries=0))  # data nodes (ia8xxxx.us.archive.org) included
    session.mount_http_adapter(max_retries=0)  # replaces the client's retrying archive.org adapter
    return session


def s3_auth(session):
    """The client's request auth when the session holds keys (trusted hosts only), else None."""
    from internetarchive.auth import S3Auth

    if session.access_key and session.secret_key:
        return S3Auth(session.access_key, session.secret_key)
    return None


class Sessions:
    """One session per worker thread (requests does not promise a Session is thread-safe)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self._local = threading.local()

    def get(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = make_session(self.base_url)
        return session

"""The stage's one retry policy, and what a failed request means, judged by the type of its error.

Every request the stage makes (a search page, an item's metadata, a file) runs under one
`RetryPolicy`: a tenacity `Retrying` that gives up after `archive.retries` retries, waits
`archive.backoff_s` doubling up to MAX_BACKOFF_S, and honours a server's Retry-After on 429/503 (capped
at MAX_RETRY_AFTER_S). The sessions themselves never retry (session.py), so the layers never multiply.

Transient, worth another attempt: HTTP 429/5xx, a broken or timed-out connection, a malformed or short
answer. Anything else (HTTP 4xx, a rejected query, a redirect loop) fails at once.
"""

from __future__ import annotations

import email.utils
import functools
import http.client
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity
import urllib3.exceptions

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER_S = 120.0  # a server may ask for hours; waiting that long in a job is never right
MAX_BACKOFF_S = 60.0

T = TypeVar("T")


class HTTPStatusError(Exception):
    """An answer with an error status; transient when the status is in RETRY_STATUSES."""

    def __init__(self, status: int, reason: str = "", url: str = "", retry_after: str | None = None):
        self.status, self.reason, self.retry_after = status, reason or "", retry_after
        self.path = urlsplit(url).path  # never the host: logs and outputs stay free of it
        super().__init__(f"HTTP {status} {self.reason}".strip())

    @property
    def transient(self) -> bool:
        return self.status in RETRY_STATUSES

    @classmethod
    def from_response(cls, response: requests.Response) -> HTTPStatusError:
        return cls(response.status_code, response.reason, response.url, response.headers.get("Retry-After"))

    @classmethod
    def from_error(cls, err: requests.exceptions.HTTPError) -> HTTPStatusError | None:
        """The status of a requests HTTPError, also when a library re-raised it without its response
        (the internetarchive client's get_metadata does); None when no response is left."""
        for cause in _chain(err):
            response = getattr(cause, "response", None)
            if isinstance(response, requests.Response):
                return cls.from_response(response)
        return None


def raise_for_status(response: requests.Response) -> None:
    if response.status_code >= 400:
        raise HTTPStatusError.from_response(response)


class TransientError(Exception):
    """A condition of this stage's own that a new attempt may well cure."""


class MalformedResponse(TransientError):
    """A body that is not the JSON promised (truncated, an HTML error page, the wrong shape)."""

    def __init__(self, what: str, cause: BaseException):
        super().__init__(f"malformed {what} ({type(cause).__name__}: {short(cause, 120)})")


class ShortBody(TransientError):
    """The server closed the connection cleanly before sending the whole file."""

    def __init__(self, got: int, size: int):
        self.got, self.size = got, size
        super().__init__(f"body ended at byte {got} of {size}")


class StalePartial(TransientError):
    """The server cannot continue our partial file (416, another range): it was dropped."""


class AnswerTooSlow(TransientError):
    """A JSON answer still arriving at its deadline (each read in time, the whole far too slow)."""


class AnswerTooLarge(Exception):
    """A JSON answer over the size cap: not worth another attempt, the next one is as large."""


# Errors of the connection, not of the server's answer: the same request may well succeed.
TRANSPORT_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
# What a caller sees once the policy gave up on a transient error (HTTPStatusError apart).
RETRYABLE = (TransientError, *TRANSPORT_ERRORS)


def is_transient(err: BaseException) -> bool:
    if isinstance(err, HTTPStatusError):
        return err.transient
    return isinstance(err, RETRYABLE)


# --- one-line descriptions, by the types in an error's chain ------------------------------------------


def _chain(err: BaseException) -> Iterator[BaseException]:
    """`err` and every exception it wraps: causes, contexts, exception arguments, urllib3's `reason`."""
    seen: set[int] = set()
    todo = [err]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo += [w for w in wrapped if isinstance(w, BaseException)]


def _incomplete(err: Any) -> str:
    partial = len(err.partial) if isinstance(err.partial, bytes) else err.partial
    return f"body cut short ({partial} bytes read, {err.expected} missing)"


# In priority order: the innermost cause says most (a reset inside a "connection broken").
_SUMMARIES: tuple[tuple[tuple[type[BaseException], ...], Callable[[Any], str]], ...] = (
    ((ConnectionResetError,), lambda e: "connection reset by the server"),
    ((ConnectionRefusedError,), lambda e: "connection refused"),
    ((urllib3.exceptions.IncompleteRead, http.client.IncompleteRead), _incomplete),
    (
        (requests.exceptions.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError),
        lambda e: "connect timed out",
    ),
    (
        (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError),
        lambda e: "read timed out",
    ),
    ((urllib3.exceptions.ProtocolError,), lambda e: "connection broken mid-body"),
)


def short(err: BaseException | str, limit: int = 300) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(err: BaseException) -> str:
    """A one-line reason for a log or downloads.parquet, not a nested urllib3 repr."""
    if isinstance(err, (HTTPStatusError, TransientError)):
        return str(err)
    chain = list(_chain(err))
    for types, summary in _SUMMARIES:
        for cause in chain:
            if isinstance(cause, types):
                return f"{type(err).__name__}: {summary(cause)}"
    return f"{type(err).__name__}: {short(err, 160)}"


# --- the policy -------------------------------------------------------------------------------------


def retry_after_s(header: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) in seconds, capped; None when it is junk."""
    if header is None:
        return None
    text = header.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            seconds = email.utils.parsedate_to_datetime(text).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


class RetryPolicy:
    """`call(what, fn, *args)`: run `fn` until it succeeds, fails for good, or the retries are spent.

    The last error is raised as it is (tenacity's reraise), so a caller tells "gave up" from "failed at
    once" with `is_transient(err)`. State lives in each call, so one policy serves every thread.
    """

    def __init__(self, retries: int, backoff_s: float):
        self.retries = retries
        self.attempts = retries + 1
        self._backoff = tenacity.wait_exponential(multiplier=backoff_s, max=MAX_BACKOFF_S)
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(is_transient),
            reraise=True,
        )

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        retrying = self._retrying.copy(before_sleep=functools.partial(self._log_retry, what))
        return retrying(fn, *args, **kwargs)

    def delay(self, attempt: int, error: BaseException | None) -> tuple[float, str]:
        """The wait after failed attempt number `attempt` (1-based), and what decided it."""
        if isinstance(error, HTTPStatusError) and error.status in RETRY_AFTER_STATUSES:
            wait = retry_after_s(error.retry_after)
            if wait is not None:
                return wait, "Retry-After"
        state = tenacity.RetryCallState(self._retrying, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        return self._backoff(state), "backoff"

    def _wait(self, state: tenacity.RetryCallState) -> float:
        return self.delay(state.attempt_number, state.outcome.exception() if state.outcome else None)[0]

    def _log_retry(self, what: str, state: tenacity.RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        wait, source = self.delay(state.attempt_number, err)
        problem = f"HTTP {err.status} for {err.path}" if isinstance(err, HTTPStatusError) else describe(err)
        log.warning(
            "%s: %s; retry %d of %d in %.2f s (%s)",
            what,
            problem,
            state.attempt_number,
            self.retries,
            wait,
            source,
        )

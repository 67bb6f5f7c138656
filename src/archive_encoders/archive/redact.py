"""Credential redaction: no log handler may print a user's archive.org keys or login cookies.

Defence in depth beside session.py, which sends keys only to https archive.org: a library that logs a
header or a cookie (a debug line, a traceback) is caught on the handler.
"""

from __future__ import annotations

import logging
import threading


class RedactFilter(logging.Filter):
    """Replaces known secrets in log records (message, args, traceback) with '***'."""

    def __init__(self) -> None:
        super().__init__("archive_encoders.redact")
        self.secrets: set[str] = set()

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_REDACT = RedactFilter()
_REDACT_LOCK = threading.Lock()


def protect_secrets(*secrets: str | None) -> None:
    """No handler of the root logger may print these strings (IA keys, cookies) from now on.

    Filters sit on handlers, not loggers, because a logger's filters skip records from its children.
    """
    with _REDACT_LOCK:
        _REDACT.secrets.update(s for s in secrets if isinstance(s, str) and len(s) >= 4)
        handlers = [*logging.getLogger().handlers, logging.lastResort]
        for handler in handlers:
            if handler is not None and _REDACT not in handler.filters:
                handler.addFilter(_REDACT)

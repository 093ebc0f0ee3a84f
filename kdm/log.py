"""Structured logs: one JSON object per line on stderr, with fixed context keys.

Messages are constant lower-case phrases; details go in fields. Context keys (component,
source, task) are bound once per logger. Row values are never logged by kdm's own code.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

CONTEXT_KEYS = ("component", "source", "task")


class JsonFormatter(logging.Formatter):
    """Render a record and its `fields` as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object: time, level, message, context and fields."""
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "msg": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class Logger:
    """A logger with bound context fields."""

    def __init__(self, name: str, **context: Any) -> None:
        self._log = logging.getLogger(f"kdm.{name}")
        self.context = {"component": name, **context}

    def bind(self, **context: Any) -> Logger:
        """A logger with more context."""
        child = Logger.__new__(Logger)
        child._log = self._log
        child.context = {**self.context, **context}
        return child

    def _emit(self, level: int, msg: str, fields: dict[str, Any],
              exc: BaseException | None = None) -> None:
        if self._log.isEnabledFor(level):
            self._log.log(level, msg, extra={"fields": {**self.context, **fields}},
                          exc_info=exc)

    def debug(self, msg: str, **fields: Any) -> None:
        """Log at debug level."""
        self._emit(logging.DEBUG, msg, fields)

    def info(self, msg: str, **fields: Any) -> None:
        """Log at info level."""
        self._emit(logging.INFO, msg, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        """Log at warning level."""
        self._emit(logging.WARNING, msg, fields)

    def error(self, msg: str, exc: BaseException | None = None, **fields: Any) -> None:
        """Log at error level, with the exception's traceback when given."""
        self._emit(logging.ERROR, msg, fields, exc)


def setup(level: str = "info") -> None:
    """Send kdm's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("kdm")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False

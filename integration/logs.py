"""Structured log lines: one JSON object per line, with the event name and its fields.

Log lines go to stderr, always; tables and summaries go to stdout, so `tierdesk sync > out.txt` keeps
only what the command printed. The long-running roles (serve, worker, scheduler) log at INFO by default;
one-shot commands (sync, segment, queue, jobs, setup, demo) at WARNING, so a person at a terminal sees
their output rather than the service's chatter. TIERDESK_LOG_LEVEL overrides both.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from werkzeug.serving import WSGIRequestHandler

# Attributes every LogRecord has; anything else was passed through `extra=` and belongs in the line.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                line[key if key not in line else f"field_{key}"] = value  # never overwrite the name
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def level_of(value: str | None, default: str = "INFO") -> str:
    """A TIERDESK_LOG_LEVEL value checked against the names logging knows (None: ``default``)."""
    level = (value or default).strip().upper()
    if level not in LEVELS:
        raise ValueError(f"TIERDESK_LOG_LEVEL={value}: expected one of {', '.join(LEVELS)}")
    return level


def setup(level: str | None = None, default: str = "INFO") -> None:
    """Send tierdesk's logs (werkzeug's too) to stderr as JSON lines; idempotent, the level updated."""
    chosen = level_of(level, default)
    for name in ("tierdesk", "werkzeug"):
        logger = logging.getLogger(name)
        logger.setLevel(chosen if name == "tierdesk" else max(logging.WARNING, logging.getLevelName(chosen)))
        if not any(getattr(h, "_tierdesk", False) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(JsonFormatter())
            handler._tierdesk = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
            logger.propagate = False


access_log = logging.getLogger("tierdesk.web")


class AccessLog(WSGIRequestHandler):
    """`tierdesk serve`'s requests as JSON lines (event `web.request`), not werkzeug's coloured text.

    Errors werkzeug reports about a connection go through the same logger at their own level."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        access_log.info(
            "web.request",
            extra={
                "method": self.command,
                "path": self.path.split("?", 1)[0],  # query strings may carry a sign-in's `next`
                "status": int(code) if str(code).isdigit() else str(code),
                "bytes": int(size) if str(size).isdigit() else None,
                "remote": self.address_string(),
            },
        )

    def log(self, type: str, message: str, *args: object) -> None:  # noqa: A002 - werkzeug's name
        level = logging.ERROR if type == "error" else logging.INFO
        access_log.log(level, "web.server", extra={"message_text": message % args if args else message})

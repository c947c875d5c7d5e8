"""Structured logs: one JSON object per line on stderr, for `payfeed serve`.

Each line has `ts` (UTC, RFC 3339), `level`, `logger`, `message`, and whatever
the call site passed in `extra` (`batch_id`, `provider`, counts). Record content
never goes into a log line; messages that might quote it (a Kafka message's
reason) are masked for card numbers.
"""

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.masking import mask_pans

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_pans(record.getMessage()),
        }
        entry.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = mask_pans(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str) -> None:
    """Route every logger (uvicorn's included) through one JSON handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

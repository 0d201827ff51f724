"""JSON log lines for the CLI entrypoints (``FARM_LOG_FORMAT=json``).

One object per line: ``ts``, ``level``, ``logger``, ``msg`` and the structured fields the farm passes in
``extra=`` (``session_id``, ``worker_id``, ``tenant``, ``prewarm_s``, ...). Only fields in ``FIELDS`` are
copied, so an ``extra`` can never leak user content (audio, prompts, images) into the logs; an
exception adds its type and traceback. ``bind(worker_id=...)`` sets process-wide fields every line
carries (the worker id, once known).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, ClassVar

FIELDS = frozenset(
    {
        "session_id",
        "worker_id",
        "tenant",
        "agent_id",
        "pool",
        "queue",
        "state",
        "reason",
        "code",
        "attempt",
        "token",
        "prewarm_s",
        "ttff_s",
        "queue_wait_s",
        "duration_s",
        "frames",
        "late_frames",
        "port",
        "request_id",
        "route",
        "status",
        "child",  # farm up supervision: which child, how it exited
        "pid",
        "exit_code",
        "topic",  # pub/sub topic (farm:speak, farm:stop)
        "error",  # an exception's type name, never its message
    }
)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object with the allowed structured fields."""

    bound: ClassVar[dict[str, Any]] = {}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **self.bound,
        }
        for key in FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                entry[key] = value if isinstance(value, (int, float, bool, str)) else str(value)
        if record.exc_info:
            entry["error"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


def bind(**fields: Any) -> None:
    """Fields every later line carries (e.g. ``worker_id``); only names in ``FIELDS``."""
    unknown = set(fields) - FIELDS
    if unknown:
        raise ValueError(f"not loggable fields: {sorted(unknown)}; allowed: {sorted(FIELDS)}")
    JsonFormatter.bound.update(fields)


def configure(log_format: str, level: int = logging.INFO) -> None:
    """Root logging for an entrypoint: ``text`` (the default basicConfig) or ``json`` on stderr."""
    if log_format not in ("text", "json"):
        raise ValueError(f"FARM_LOG_FORMAT must be 'text' or 'json', got {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

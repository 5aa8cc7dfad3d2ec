"""Log lines for people or for log pipelines: `text`, or `json`: one object per line with the
keys of kopf's JSON logs (message, timestamp, severity) plus logger, exception and any extra
fields a record carries, so operator and Hermes lines parse alike."""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Final, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# At DEBUG these print every AWS request with its signature and body (queue messages carry the
# customers' mail): the platform's DEBUG does not switch them on.
CHATTY: Final = ("botocore", "boto3", "s3transfer", "urllib3")
_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; extra attributes (`extra={...}`) become fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "message": record.getMessage(),
            "timestamp": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(),
            "severity": record.levelname.lower(),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure(level: str, fmt: LogFormat = "text") -> None:
    """Root logging to stderr in the chosen format (replaces earlier handlers)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(level)


def set_level(level: str) -> None:
    """The root logger at `level`; the AWS SDK's loggers no lower than INFO."""
    logging.getLogger().setLevel(level.upper())
    floor = max(logging.getLevelNamesMapping().get(level.upper(), logging.INFO), logging.INFO)
    for name in CHATTY:
        logging.getLogger(name).setLevel(floor)

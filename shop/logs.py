"""Logging set-up: text or JSON lines, with secrets redacted on the way out.

Redaction happens in a filter on the handler, so no code path (ours, httpx's,
hypercorn's) can print a bot token or provider key, whatever it formats.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Iterable

# A bot token inside a Bot API URL: /bot123456:AA.../method
_BOT_URL = re.compile(r"/bot\d+:[A-Za-z0-9_-]+")
_SECRET_MIN_LENGTH = 6


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide bot tokens in URLs and any of the given secret values."""
    text = _BOT_URL.sub("/bot<redacted>", text)
    for secret in secrets:
        if len(secret) >= _SECRET_MIN_LENGTH:
            text = text.replace(secret, "<redacted>")
    return text


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now so the redaction covers it too.
            formatted = logging.Formatter().formatException(record.exc_info)
            cleaned += "\n" + redact(formatted, self.secrets)
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("kind", "key", "message_type", "payment_id", "telegram_id", "provider"):
            if hasattr(record, key):
                entry[key] = str(getattr(record, key))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, fmt: str, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO, and a Bot API URL carries the token.
    for noisy in ("httpx", "httpcore", "hpack", "hypercorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

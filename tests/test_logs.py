"""Log lines: JSON when asked, and never a token."""

from __future__ import annotations

import io
import json
import logging

from shop.logs import JsonFormatter, RedactingFilter

TOKEN = "123456:SECRET-token-abcdefghijklmnopqrstuvwxyz"


def test_json_lines_carry_the_actor_and_no_token() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter([TOKEN]))
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("shop.test.json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error(
            "calling https://api.telegram.org/bot%s/getMe failed",
            TOKEN,
            extra={"kind": "user", "key": 42, "message_type": "Update"},
        )
        try:
            raise ValueError(f"token {TOKEN} in an exception")
        except ValueError:
            log.exception("boom")
    finally:
        log.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    assert lines[0]["level"] == "error"
    assert (lines[0]["kind"], lines[0]["key"], lines[0]["message_type"]) == ("user", "42", "Update")
    assert TOKEN not in stream.getvalue()
    assert "SECRET-token" not in stream.getvalue()
    assert "<redacted>" in lines[0]["message"]

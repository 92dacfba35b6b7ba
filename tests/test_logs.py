"""``connector_core.logs``: what looks like a secret is masked in the message and in every
field, the JSON formatter writes one valid object a line with the record's fields kept, and an
exception is its type name (its traceback only when asked)."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from connector_core.logs import MASK, JsonFormatter, RedactingFormatter, redact
from connector_core.secret import Secret

TOKEN = "cs_" + "Ab1-_" * 8 + "xyz"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-_~+/="
SECRETS = (TOKEN, WHSEC, BEARER, "the-code-123", "state-456", "at-789", "rt-abc", "s3cret!")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Bearer {BEARER}", f"Authorization: Bearer {MASK}"),
        ("authorization: basic dXNlcjpwYXNz", f"authorization: basic {MASK}"),
        (f"GET /connect/{TOKEN} 200", f"GET /connect/cs_{MASK} 200"),
        (f"endpoint secret {WHSEC}.", f"endpoint secret whsec_{MASK}."),
        (
            "/callback?code=the-code-123&state=state-456&x=1",
            f"/callback?code={MASK}&state={MASK}&x=1",
        ),
        (
            "grant_type=refresh_token&refresh_token=rt-abc&client_secret=s3cret!",
            f"grant_type=refresh_token&refresh_token={MASK}&client_secret={MASK}",
        ),
        ("#access_token=at-789 and token=t", f"#access_token={MASK} and token={MASK}"),
        ('{"access_token": "at-789", "expires_in": 3600}', f'{{"access_token": "{MASK}", "expires_in": 3600}}'),
        ("{'refresh_token': 'rt-abc'}", f"{{'refresh_token': '{MASK}'}}"),
    ],
)
def test_redact_masks_what_looks_like_a_secret(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "GET /v1/connections/conn_01HX 200 3.2ms",
        "error_code=5 status_code=200 docs_page=2 response_type=code",
        "the connection needs reconnecting: invalid_grant",
        "connect session sess_01HX: callback refused",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def _record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"failed with Bearer {BEARER}")
        except RuntimeError:
            exc_info = sys.exc_info()
    record = logging.getLogger("connector_core.serve").makeRecord(
        "connector_core.serve", logging.WARNING, __file__, 1, msg, args, exc_info, extra=extra
    )
    return record


def test_a_json_line_is_one_valid_object_with_the_fields_kept_and_secrets_masked() -> None:
    record = _record(
        "GET %s %s\nsecond line",
        f"/connect/{TOKEN}?code=the-code-123",
        200,
        method="GET",
        path=f"/connect/{TOKEN}",
        status=200,
        ms=3.5,
        connection_id="conn_01HX",
        headers={"Authorization": f"Bearer {BEARER}", "X-Hook": WHSEC},
        tokens=[Secret("at-789"), "refresh_token=rt-abc"],
        ratio=float("nan"),
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "WARNING" and data["logger"] == "connector_core.serve"
    assert data["time"].endswith("Z") and data["time"][:4].isdigit() and "T" in data["time"]
    assert data["message"] == f"GET /connect/cs_{MASK}?code={MASK} 200\nsecond line"
    assert data["method"] == "GET" and data["status"] == 200 and data["ms"] == 3.5
    assert data["path"] == f"/connect/cs_{MASK}" and data["connection_id"] == "conn_01HX"
    assert data["headers"] == {"Authorization": f"Bearer {MASK}", "X-Hook": f"whsec_{MASK}"}
    assert data["tokens"] == [MASK, f"refresh_token={MASK}"]
    assert data["ratio"] == "nan"
    assert "exc_type" not in data and "args" not in data and "msg" not in data
    for secret in SECRETS:
        assert secret not in line


def test_an_exception_is_its_type_name_and_its_traceback_only_when_asked() -> None:
    record = _record("unexpected error answering %s", "GET /v1/connections", exc=True)
    plain = json.loads(JsonFormatter().format(record))
    assert plain["exc_type"] == "RuntimeError" and "traceback" not in plain
    detailed = json.loads(JsonFormatter(tracebacks=True).format(record))
    assert detailed["exc_type"] == "RuntimeError"
    assert "Traceback (most recent call last)" in detailed["traceback"]
    assert f"Bearer {MASK}" in detailed["traceback"] and BEARER not in detailed["traceback"]


def test_the_formatters_own_keys_are_not_overwritten_by_fields() -> None:
    record = _record("hello", level="fake", logger="fake", time="fake", color_message="\x1b[1mhello\x1b[0m")
    data = json.loads(JsonFormatter().format(record))
    assert data["level"] == "WARNING" and data["logger"] == "connector_core.serve" and data["time"] != "fake"
    assert "color_message" not in data


def test_the_text_formatter_masks_its_whole_line_traceback_included() -> None:
    record = _record("callback /cb?state=%s", "state-456", exc=True)
    text = RedactingFormatter("%(levelname)s: %(message)s").format(record)
    assert text.startswith(f"WARNING: callback /cb?state={MASK}\nTraceback")
    assert "RuntimeError: failed with Bearer ***" in text
    for secret in SECRETS:
        assert secret not in text


def test_a_careless_log_call_through_a_real_handler_leaks_nothing() -> None:
    stream_records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            stream_records.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("connector_core.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("token response: %s", {"access_token": "at-789", "refresh_token": "rt-abc"})
        logger.info("webhook secret", extra={"secret": WHSEC})
    finally:
        logger.removeHandler(handler)
    assert len(stream_records) == 2
    first, second = (json.loads(line) for line in stream_records)
    assert first["message"] == f"token response: {{'access_token': '{MASK}', 'refresh_token': '{MASK}'}}"
    assert second["secret"] == f"whsec_{MASK}"

"""Standard Webhooks signing and verifying (connector_core.webhooks.signing), on our own: the
spec's example vector, secrets, the signature header, and every way verify() refuses a
delivery, with no secret or signature in any error."""

from __future__ import annotations

import base64
import json
import time
import traceback
from collections.abc import Mapping

import httpx
import pytest
from starlette.datastructures import Headers

from connector_core.errors import ConnectorError, ValidationError
from connector_core.secret import Secret
from connector_core.webhooks import (
    SECRET_PREFIX,
    WebhookVerificationError,
    new_secret,
    parse_secret,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

# The example of the Standard Webhooks reference libraries' tests.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

NOW = 1_800_000_000
BODY = json.dumps({"id": "evt_01", "type": "connection.created", "data": {"n": 1}}).encode()
MSG_ID = "evt_01JABCDEFGHJKMNPQRSTVWXYZ0"


def _secret(byte: int, size: int = 32) -> Secret:
    return Secret(SECRET_PREFIX + base64.b64encode(bytes([byte]) * size).decode())


OLD, NEW, OTHER = _secret(1), _secret(2), _secret(3)


def _headers(*secrets: Secret, msg_id: str = MSG_ID, timestamp: int = NOW, body: bytes = BODY) -> dict[str, str]:
    return webhook_headers(list(secrets or (NEW,)), msg_id, timestamp, body)


def _refused(
    body: bytes, headers: Mapping[str, str], secret: object = NEW, **kwargs: object
) -> WebhookVerificationError:
    with pytest.raises(WebhookVerificationError) as caught:
        verify(body, headers, secret, now=NOW, **kwargs)  # type: ignore[arg-type]
    error = caught.value
    # Never the secret or a signature in what the error shows.
    shown = f"{error} {error!r} {error.args}"
    for secret_text in (OLD.reveal(), NEW.reveal(), OTHER.reveal()):
        assert secret_text not in shown
        assert secret_text.removeprefix(SECRET_PREFIX) not in shown
    for value in headers.values():
        for entry in value.split():
            if entry.startswith("v1,") and len(entry) > 12:
                assert entry.removeprefix("v1,") not in shown
    assert "\n" not in str(error)
    return error


# ---------------------------------------------------------------- the spec's vector


def test_the_spec_example_signs_to_the_spec_signature() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert sign(Secret(SPEC_SECRET), SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_the_spec_example_verifies() -> None:
    headers = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}
    assert verify(SPEC_BODY, headers, SPEC_SECRET, now=SPEC_TIMESTAMP + 10) == {"test": 2432232314}


# ------------------------------------------------------------------------ secrets


def test_a_new_secret_is_whsec_and_32_random_bytes_and_shows_nothing() -> None:
    secret = new_secret()
    assert isinstance(secret, Secret)
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "***"
    assert f"{secret}" == "***"
    assert secret.reveal().startswith("whsec_")
    assert len(parse_secret(secret)) == 32
    assert new_secret() != secret


@pytest.mark.parametrize("size", [24, 64])
def test_a_new_secret_may_have_24_to_64_bytes(size: int) -> None:
    assert len(parse_secret(new_secret(size=size))) == size


@pytest.mark.parametrize("size", [23, 65, 0, True, 32.0])
def test_a_new_secret_of_another_size_is_refused(size: object) -> None:
    with pytest.raises(ValidationError) as caught:
        new_secret(size=size)  # type: ignore[arg-type]
    assert caught.value.field == "size"


def test_parse_secret_gives_the_key_bytes() -> None:
    key = bytes(range(32))
    text = "whsec_" + base64.b64encode(key).decode()
    assert parse_secret(text) == key
    assert parse_secret(Secret(text)) == key
    assert parse_secret(text + "\n") == key  # a file's final newline


def test_parse_secret_takes_unpadded_base64() -> None:
    key = bytes(range(25))  # 25 bytes: base64 with padding
    padded = base64.b64encode(key).decode()
    assert padded.endswith("=")
    assert parse_secret("whsec_" + padded.rstrip("=")) == key


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (base64.b64encode(bytes(32)).decode(), "begins with 'whsec_'"),  # the bare base64
        ("whsk_" + base64.b64encode(bytes(32)).decode(), "begins with 'whsec_'"),
        ("WHSEC_" + base64.b64encode(bytes(32)).decode(), "begins with 'whsec_'"),
        ("whpk_" + base64.b64encode(bytes(32)).decode(), "begins with 'whsec_'"),  # an asymmetric key
        ("whsec_" + "not base64 at all!!" * 3, "base64"),
        ("whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(), "base64"),
        ("whsec_", "got 0"),
        ("whsec_" + base64.b64encode(bytes(23)).decode(), "got 23"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "got 65"),
        ("", "begins with 'whsec_'"),
    ],
)
def test_a_bad_secret_is_a_validation_error_naming_secret_without_its_value(text: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_secret(text)
    error = caught.value
    assert error.field == "secret"
    assert str(error).startswith("secret: ")
    assert why in str(error)
    tail = text.removeprefix("whsec_")
    if tail:
        assert tail not in f"{error} {error!r}"


def test_a_secret_that_is_not_text_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"^secret: "):
        parse_secret(b"whsec_abc")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ signing


def test_a_signature_is_v1_and_the_base64_of_32_bytes() -> None:
    signature = sign(NEW, MSG_ID, NOW, BODY)
    version, _, encoded = signature.partition(",")
    assert version == "v1"
    assert len(base64.b64decode(encoded, validate=True)) == 32
    assert sign(NEW, MSG_ID, NOW, BODY) == signature


@pytest.mark.parametrize(
    "change",
    [
        {"secret": OTHER},
        {"msg_id": MSG_ID + "x"},
        {"timestamp": NOW + 1},
        {"body": BODY + b" "},
    ],
)
def test_every_input_changes_the_signature(change: dict[str, object]) -> None:
    inputs: dict[str, object] = {"secret": NEW, "msg_id": MSG_ID, "timestamp": NOW, "body": BODY}
    assert sign(**{**inputs, **change}) != sign(**inputs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("msg_id", ""),
        ("msg_id", "evt.1"),  # '.' separates the signed parts
        ("msg_id", "evt 1"),
        ("msg_id", "evt\r\nx-injected: 1"),
        ("msg_id", "évt"),
        ("msg_id", "e" * 257),
        ("msg_id", 12),
        ("timestamp", -1),
        ("timestamp", True),
        ("timestamp", 1.5),
        ("timestamp", "1800000000"),
        ("body", "{}"),
    ],
)
def test_sign_refuses_a_bad_message(field: str, value: object) -> None:
    inputs: dict[str, object] = {"secret": NEW, "msg_id": MSG_ID, "timestamp": NOW, "body": BODY, field: value}
    with pytest.raises(ValidationError) as caught:
        sign(**inputs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_the_signature_header_has_one_signature_per_secret_in_order() -> None:
    header = signature_header([OLD, NEW], MSG_ID, NOW, BODY)
    assert header.split(" ") == [sign(OLD, MSG_ID, NOW, BODY), sign(NEW, MSG_ID, NOW, BODY)]


def test_one_secret_not_in_a_list_is_one_secret() -> None:
    assert signature_header(NEW, MSG_ID, NOW, BODY) == sign(NEW, MSG_ID, NOW, BODY)  # type: ignore[arg-type]
    text = NEW.reveal()
    assert signature_header(text, MSG_ID, NOW, BODY) == sign(NEW, MSG_ID, NOW, BODY)  # type: ignore[arg-type]


def test_no_secret_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        signature_header([], MSG_ID, NOW, BODY)
    assert caught.value.field == "secrets"


def test_the_delivery_headers() -> None:
    assert webhook_headers([OLD, NEW], MSG_ID, NOW, BODY) == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(NOW),
        "webhook-signature": signature_header([OLD, NEW], MSG_ID, NOW, BODY),
        "content-type": "application/json",
    }


# ---------------------------------------------------------------------- verifying


def test_a_good_delivery_verifies_to_its_body() -> None:
    assert verify(BODY, _headers(), NEW, now=NOW) == json.loads(BODY)
    assert verify(BODY.decode(), _headers(), NEW.reveal(), now=NOW) == json.loads(BODY)


@pytest.mark.parametrize("case", [str.upper, str.title, lambda name: name])
def test_header_names_are_case_insensitive(case: object) -> None:
    headers = {case(name): value for name, value in _headers().items()}  # type: ignore[operator]
    assert verify(BODY, headers, NEW, now=NOW)["id"] == "evt_01"


def test_framework_header_objects_are_taken() -> None:
    pairs = [(name.encode(), value.encode()) for name, value in _headers().items()]
    assert verify(BODY, Headers(raw=pairs), NEW, now=NOW)["id"] == "evt_01"
    assert verify(BODY, httpx.Headers(_headers()), NEW, now=NOW)["id"] == "evt_01"


def test_a_header_repeated_with_another_value_is_refused() -> None:
    pairs = [(name.encode(), value.encode()) for name, value in _headers().items()]
    pairs.append((b"webhook-id", b"evt_other"))
    assert _refused(BODY, Headers(raw=pairs)).code == "missing_header"
    same = {**_headers(), "Webhook-Id": MSG_ID}  # the same value twice is one value
    assert verify(BODY, same, NEW, now=NOW)["id"] == "evt_01"


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_or_empty_header_is_refused(name: str) -> None:
    headers = _headers()
    del headers[name]
    error = _refused(BODY, headers)
    assert error.code == "missing_header"
    assert name in str(error)
    assert _refused(BODY, {**_headers(), name: "  "}).code == "missing_header"


@pytest.mark.parametrize("stamp", ["abc", "1.8e9", "1800000000.5", "-1800000000", "0x6b49d200", "1" * 16])
def test_a_timestamp_that_is_not_whole_seconds_is_refused(stamp: str) -> None:
    error = _refused(BODY, {**_headers(), "webhook-timestamp": stamp})
    assert error.code == "bad_timestamp"


def test_an_old_delivery_is_refused_as_expired() -> None:
    # A replay: a genuine delivery, signed six minutes ago.
    headers = _headers(timestamp=NOW - 301)
    error = _refused(BODY, headers)
    assert error.code == "expired"
    assert "timestamp too old" in str(error)
    assert verify(BODY, _headers(timestamp=NOW - 300), NEW, now=NOW)  # at the edge: accepted


def test_a_delivery_from_the_future_is_refused() -> None:
    error = _refused(BODY, _headers(timestamp=NOW + 301))
    assert error.code == "bad_timestamp"
    assert "timestamp too new" in str(error)
    assert verify(BODY, _headers(timestamp=NOW + 300), NEW, now=NOW)


def test_the_tolerance_is_the_callers() -> None:
    headers = _headers(timestamp=NOW - 3600)
    assert verify(BODY, headers, NEW, now=NOW, tolerance=3600)
    assert _refused(BODY, headers, tolerance=3599).code == "expired"


def test_the_clock_is_used_when_no_now_is_given() -> None:
    assert verify(BODY, _headers(timestamp=int(time.time())), NEW)["id"] == "evt_01"
    with pytest.raises(WebhookVerificationError) as caught:
        verify(BODY, _headers(timestamp=1_000_000_000), NEW)  # signed in 2001
    assert caught.value.code == "expired"


@pytest.mark.parametrize("tolerance", [-1, True, 1.5])
def test_a_bad_tolerance_is_refused(tolerance: object) -> None:
    with pytest.raises(ValidationError) as caught:
        verify(BODY, _headers(), NEW, now=NOW, tolerance=tolerance)  # type: ignore[arg-type]
    assert caught.value.field == "tolerance"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),
        lambda h, b: (h, b.replace(b"connection.created", b"connection.deleted")),
        lambda h, b: ({**h, "webhook-id": MSG_ID[:-1] + "1"}, b),
        lambda h, b: ({**h, "webhook-timestamp": str(NOW - 1)}, b),
        lambda h, b: ({**h, "webhook-signature": h["webhook-signature"][:-4] + "AAA="}, b),
    ],
    ids=["body-appended", "body-changed", "id", "timestamp", "signature"],
)
def test_a_tampered_delivery_is_refused(tamper: object) -> None:
    headers, body = tamper(_headers(), BODY)  # type: ignore[operator]
    assert _refused(body, headers).code == "bad_signature"


def test_the_wrong_secret_is_refused() -> None:
    assert _refused(BODY, _headers(NEW), OTHER).code == "bad_signature"
    assert _refused(BODY, _headers(NEW), [OLD, OTHER]).code == "bad_signature"


def test_while_a_secret_rotates_either_secret_verifies() -> None:
    both = _headers(OLD, NEW)
    assert verify(BODY, both, OLD, now=NOW)
    assert verify(BODY, both, NEW, now=NOW)
    assert verify(BODY, both, [OTHER, NEW], now=NOW)
    # The receiver holds both while the sender has switched to the new one, or not yet.
    assert verify(BODY, _headers(NEW), [OLD, NEW], now=NOW)
    assert verify(BODY, _headers(OLD), [OLD, NEW], now=NOW)
    assert _refused(BODY, both, OTHER).code == "bad_signature"


def test_other_versions_and_malformed_entries_are_ignored() -> None:
    good = sign(NEW, MSG_ID, NOW, BODY)
    noise = "v2,AAAA v1a,AAAA garbage v1, v1,!!!! v1,AAAA"
    assert verify(BODY, {**_headers(), "webhook-signature": f"{noise} {good}"}, NEW, now=NOW)
    assert _refused(BODY, {**_headers(), "webhook-signature": noise}).code == "bad_signature"
    # The right MAC under another version name is not a v1 signature.
    assert _refused(BODY, {**_headers(), "webhook-signature": "v1a" + good[2:]}).code == "bad_signature"


def test_a_truncated_signature_is_refused() -> None:
    good = sign(NEW, MSG_ID, NOW, BODY)
    digest = base64.b64decode(good[3:])
    short = "v1," + base64.b64encode(digest[:16]).decode()
    assert _refused(BODY, {**_headers(), "webhook-signature": short}).code == "bad_signature"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe{}", b"[" * 100_000])
def test_a_signed_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    assert _refused(body, _headers(body=body)).code == "bad_body"


def test_a_bad_secret_given_to_verify_is_the_receivers_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        verify(BODY, _headers(), "not-a-secret", now=NOW)
    assert caught.value.field == "secret"
    with pytest.raises(ValidationError) as caught:
        verify(BODY, _headers(), [], now=NOW)
    assert caught.value.field == "secret"


def test_a_verification_error_is_a_connector_error_with_a_code() -> None:
    error = _refused(BODY, _headers(OTHER))
    assert isinstance(error, ConnectorError)
    assert error.code == "bad_signature"
    assert error.message == str(error)


# ------------------------------------------------------- secrets in tracebacks


def _traceback_with_locals(error: BaseException) -> str:
    return "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())


def test_no_frame_of_a_refused_delivery_holds_the_secret_or_its_key() -> None:
    # An error tracker that records locals (Sentry, rich) sees every frame of the traceback.
    for body, headers in [(BODY, _headers(OTHER)), (b"[]", _headers(body=b"[]")), (BODY, _headers(timestamp=1))]:
        with pytest.raises(WebhookVerificationError) as caught:
            verify(body, headers, [OLD, NEW], now=NOW)
        shown = _traceback_with_locals(caught.value)
        assert "secret = [Secret('***'), Secret('***')]" in shown  # the locals were captured
        assert NEW.reveal() not in shown
        assert NEW.reveal().removeprefix(SECRET_PREFIX) not in shown
        assert repr(parse_secret(NEW)) not in shown  # computed here: a local of this frame would show


def test_no_frame_of_a_refused_secret_holds_its_value() -> None:
    short = Secret("whsec_" + base64.b64encode(b"k" * 16).decode())  # a real key, too short
    with pytest.raises(ValidationError) as caught:
        verify(BODY, _headers(), short, now=NOW)
    shown = _traceback_with_locals(caught.value)
    assert "got 16" in shown
    assert short.reveal().removeprefix(SECRET_PREFIX) not in shown
    assert repr(b"k" * 16) not in shown

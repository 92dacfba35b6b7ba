"""Interoperability with ``standardwebhooks``, the Standard Webhooks reference package: it
accepts what we sign, we accept what it signs, and both refuse the same tampered or
replayed deliveries. Its clock is the real one, so these deliveries are signed now."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
from hypothesis import given, settings
from hypothesis import strategies as st

from connector_core.secret import Secret
from connector_core.webhooks import WebhookVerificationError, new_secret, sign, verify, webhook_headers

BODY = json.dumps({"id": "evt_01", "type": "connection.refresh_failing", "data": {"attempt": 2}}).encode()
MSG_ID = "evt_01JABCDEFGHJKMNPQRSTVWXYZ0"


def _theirs(secret: Secret) -> standardwebhooks.Webhook:
    return standardwebhooks.Webhook(secret.reveal())


@pytest.mark.parametrize("size", [24, 32, 64])
def test_the_reference_package_accepts_our_deliveries(size: int) -> None:
    secret = new_secret(size=size)
    headers = webhook_headers([secret], MSG_ID, int(time.time()), BODY)
    assert _theirs(secret).verify(BODY, headers) == json.loads(BODY)


def test_the_reference_package_accepts_either_secret_while_one_rotates() -> None:
    old, new = new_secret(), new_secret()
    headers = webhook_headers([old, new], MSG_ID, int(time.time()), BODY)
    assert _theirs(old).verify(BODY, headers) == json.loads(BODY)
    assert _theirs(new).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        _theirs(new_secret()).verify(BODY, headers)


def test_the_reference_package_refuses_what_we_refuse() -> None:
    secret = new_secret()
    now = int(time.time())
    tampered = [
        (BODY + b" ", webhook_headers([secret], MSG_ID, now, BODY)),
        (BODY, {**webhook_headers([secret], MSG_ID, now, BODY), "webhook-id": "evt_other"}),
        (BODY, {**webhook_headers([secret], MSG_ID, now, BODY), "webhook-timestamp": str(now - 1)}),
        (BODY, webhook_headers([secret], MSG_ID, now - 3600, BODY)),  # replayed an hour later
    ]
    for body, headers in tampered:
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            _theirs(secret).verify(body, headers)
        with pytest.raises(WebhookVerificationError):
            verify(body, headers, secret)


def test_we_accept_the_reference_packages_deliveries() -> None:
    secret = new_secret()
    moment = datetime.now(tz=UTC)
    signature = _theirs(secret).sign(MSG_ID, moment, BODY.decode())
    headers = {
        "Webhook-Id": MSG_ID,
        "Webhook-Timestamp": str(int(moment.timestamp())),
        "Webhook-Signature": signature,
    }
    assert verify(BODY, headers, secret) == json.loads(BODY)
    assert verify(BODY, headers, [new_secret(), secret]) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError) as caught:
        verify(BODY, headers, new_secret())
    assert caught.value.code == "bad_signature"


def test_we_accept_a_secret_the_reference_package_takes() -> None:
    # Any whsec_ secret of 24 to 64 bytes, as other senders (Svix) make them: 24 bytes, unpadded.
    text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    moment = datetime.now(tz=UTC)
    signature = standardwebhooks.Webhook(text).sign(MSG_ID, moment, BODY.decode())
    headers = {"webhook-id": MSG_ID, "webhook-timestamp": str(int(moment.timestamp())), "webhook-signature": signature}
    assert verify(BODY, headers, text)["id"] == "evt_01"


_IDS = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="."), min_size=1)


@settings(max_examples=200, deadline=None)
@given(
    msg_id=_IDS,
    timestamp=st.integers(min_value=0, max_value=2**37),
    body=st.text(),
    key=st.binary(min_size=24, max_size=64),
)
def test_our_signature_is_the_reference_packages_for_any_message(
    msg_id: str, timestamp: int, body: str, key: bytes
) -> None:
    secret = Secret("whsec_" + base64.b64encode(key).decode())
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    assert sign(secret, msg_id, timestamp, body.encode()) == _theirs(secret).sign(msg_id, moment, body)

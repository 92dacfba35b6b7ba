"""At least once, with one id: SIGKILL a ``connector webhooks deliver`` process again and again
while it delivers to a receiver here, events being recorded all along. Afterwards every event
was delivered (some more than once: a kill between the POST and its record), always with the
event's id as ``webhook-id``; none is lost, none carries another id, and the store is sound.

The default tier kills 10 times; the ``slow`` tier 200 times. Both print what they saw.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from connector_core.crypto import ENV_KEY_FILE
from connector_core.store import Store
from connector_core.webhooks import DeliveryStatus, WebhookDeliverer, add_endpoint

from .conftest import Receiver, record_events

OWNER = "crash-test-deliverer"


def _kill_while_delivering(tmp_path: Path, kills: int, per_cycle: int) -> None:
    env = {ENV_KEY_FILE: str(tmp_path / "keys.json")}
    home = tmp_path / "home"
    store = Store.open(home, env=env)
    receiver = Receiver()
    _, secret = add_endpoint(store, receiver.url)
    assert secret is not None
    receiver.secrets = [secret.reveal()]
    receiver.delay = 0.004  # a receiver that takes a moment: kills land in the middle of POSTs
    receiver.start()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("CONNECTOR_", "HIBOB_"))}
    child_env.update({"CONNECTOR_HOME": str(home), **env})
    argv = [sys.executable, "-m", "connector_core", "webhooks", "deliver", "--owner", OWNER]
    argv += ["--interval", "0.02", "--claim-ttl", "2"]
    rng = random.Random(18)
    ids: list[str] = []
    killed_mid_round = 0
    try:
        for cycle in range(kills):
            ids += record_events(store, per_cycle, prefix=f"c{cycle}")
            seen = len(receiver.received)
            proc = subprocess.Popen(argv, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(2000):  # until this process delivers something (a bound on polls, not a timing assertion)
                if len(receiver.received) > seen or proc.poll() is not None:
                    break
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.05))
            killed_mid_round += store.outbox_depth() > 0
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL
        with WebhookDeliverer(store, owner=OWNER) as deliverer:  # what the last kill left
            for _ in range(100):
                if store.outbox_depth() == 0:
                    break
                deliverer.run_once()
    finally:
        receiver.stop()
    received = Counter(got.webhook_id for got in receiver.received)
    duplicates = sum(n - 1 for n in received.values())
    print(
        f"\n{kills} SIGKILLs ({killed_mid_round} with deliveries pending), {len(ids)} events, "
        f"{len(receiver.received)} POSTs received, {duplicates} sent again after a kill"
    )
    assert set(received) == set(ids)  # every event, and nothing else
    assert all(got.payload["id"] == got.webhook_id and got.ours and got.theirs for got in receiver.received)
    deliveries = store.list_webhook_deliveries(with_log=False)
    assert len(deliveries) == len(ids) and {d.status for d in deliveries} == {DeliveryStatus.DELIVERED}
    assert store.outbox_depth() == 0
    store.close()
    with sqlite3.connect(home / "connector.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_ten_sigkills_during_deliveries_lose_no_event(tmp_path: Path) -> None:
    _kill_while_delivering(tmp_path, kills=10, per_cycle=12)


@pytest.mark.slow
def test_two_hundred_sigkills_during_deliveries_lose_no_event(tmp_path: Path) -> None:
    _kill_while_delivering(tmp_path, kills=200, per_cycle=8)

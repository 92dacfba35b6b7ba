"""The service runs its blocking store calls in a few worker threads, not anyio's forty: twelve
connect sessions created at once reach the store at most STORE_THREADS at a time, and every one
is made."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
from support import World

from connector_core.serve import create_app
from connector_core.serve.threads import STORE_THREADS

from .conftest import AUTH, KEY


def test_concurrent_requests_reach_the_store_a_few_threads_at_a_time(world: World) -> None:
    store = world.connector.store
    create = store.create_session
    inside, most, lock = [0], [0], threading.Lock()

    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.02)  # long enough for the others to pile up
            return create(*args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    store.create_session = counted  # type: ignore[method-assign]
    app = create_app(world.connector, api_keys=[KEY], public_url="https://platform.example")
    body = {"end_user": {"id": "user-ada"}, "profile": world.profile}

    async def go() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://platform.example", headers=AUTH) as client:
            answers = await asyncio.gather(*(client.post("/v1/connect/sessions", json=body) for _ in range(12)))
        return [answer.status_code for answer in answers]

    assert asyncio.run(go()) == [201] * 12
    assert 1 < most[0] <= STORE_THREADS

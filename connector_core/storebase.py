"""What every store offers: the :class:`StoreLike` protocol.

Two stores implement it: :class:`connector_core.store.Store` (SQLite, embedded,
the default) and :class:`connector_core.pgstore.PgStore` (PostgreSQL, shared by
several hosts). :func:`connector_core.storeurl.open_store` picks one from a URL.
:class:`~connector_core.connector.Connector` and the CLI use nothing but these
methods, so either store serves them; ``tests/test_store_conformance.py`` holds
both to the same behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .connection import Attempt, Connection, ConnectionEvent, ConnectionStatus
    from .crypto import KeyRing
    from .oauth import TokenSet
    from .profiles import Profile, ProfileDraft
    from .secret import Secret
    from .store import KeyRotation

__all__ = ["StoreLike"]


class StoreLike(Protocol):
    """The credential store's interface (see :class:`connector_core.store.Store` for each method's contract)."""

    @property
    def path(self) -> Path | str:
        """Where the store lives: the SQLite file, or the PostgreSQL URL with its password hidden."""
        ...

    @property
    def schema_version(self) -> int: ...

    @property
    def store_id(self) -> str:
        """A random id naming the store; its key file is named after it."""
        ...

    @property
    def keyring(self) -> KeyRing: ...

    def close(self) -> None: ...

    def __enter__(self) -> StoreLike: ...

    def __exit__(self, *exc: object) -> None: ...

    # profiles
    def create_profile(self, draft: ProfileDraft) -> Profile: ...

    def update_profile(self, name: str, draft: ProfileDraft) -> Profile: ...

    def get_profile(self, name: str, *, with_secrets: bool = True) -> Profile: ...

    def profile_by_id(self, profile_id: str, *, with_secrets: bool = True) -> Profile: ...

    def list_profiles(self, provider: str | None = None) -> tuple[Profile, ...]: ...

    def profile_connection_count(self, name: str) -> int: ...

    def delete_profile(self, name: str, *, force: bool = False) -> int: ...

    # keys
    def key_usage(self) -> dict[str, int]: ...

    def rotate_keys(self, *, retire: bool = False, new_key: bool = True) -> KeyRotation: ...

    # pending authorizations
    def create_attempt(
        self,
        profile: Profile,
        *,
        state_hash: str,
        verifier: Secret | None,
        redirect_uri: str,
        scopes: tuple[str, ...],
        expires_at: float,
        connection_id: str | None = None,
    ) -> Attempt: ...

    def consume_attempt(self, state_hash: str) -> tuple[Attempt, Secret | None] | None: ...

    # connections
    def save_connection(
        self,
        profile: Profile,
        tokens: TokenSet,
        *,
        requested: tuple[str, ...],
        granted: tuple[str, ...],
        identity: Mapping[str, str],
        provider_initiated: bool,
        connection_id: str | None = None,
        reason: str = "authorized",
    ) -> Connection: ...

    def get_connection(self, connection_id: str) -> Connection: ...

    def needing_attention(self) -> tuple[Connection, ...]: ...

    def list_connections(
        self,
        *,
        profile: str | None = None,
        status: ConnectionStatus | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> tuple[Connection, ...]: ...

    def connection_events(self, connection_id: str) -> tuple[ConnectionEvent, ...]: ...

    def get_tokens(self, connection_id: str) -> tuple[Connection, Secret | None, Secret | None]: ...

    def set_status(
        self,
        connection_id: str,
        status: ConnectionStatus,
        reason: str | None,
        *,
        delete_tokens: bool = False,
        if_version: int | None = None,
    ) -> Connection: ...

    def delete_connection(self, connection_id: str) -> None: ...

    # single-flight refresh
    def try_lock_refresh(self, connection_id: str, owner: str, ttl: float) -> bool: ...

    def unlock_refresh(self, connection_id: str, owner: str) -> None: ...

    def save_refreshed_tokens(
        self, connection_id: str, expected_version: int, tokens: TokenSet, granted: tuple[str, ...]
    ) -> Connection: ...

"""Choosing the store: SQLite (embedded, the default) or PostgreSQL (shared), from a URL.

Where the URL comes from, first found wins:

1. the ``url`` argument (the CLI's ``--store-url``);
2. the ``home`` argument (the CLI's ``--home``): the SQLite store in that folder;
3. ``CONNECTOR_STORE_URL``, else the file ``CONNECTOR_STORE_URL_FILE`` names (private to its owner,
   like a key file: a URL holding a password belongs there, or in the environment, never on argv);
4. the SQLite store in ``CONNECTOR_HOME``, else the user data dir.

URLs: ``sqlite:///var/lib/connector/connector.db`` (absolute; ``sqlite:relative.db`` is relative
to the working directory, a folder means ``connector.db`` in it), or ``postgresql://...``
(``postgres://``; its own parameters are in ``docs/postgresql.md``).

Nothing here imports sqlite3 or psycopg; :func:`connector_core.store.open_store` opens the store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from .._files import UnsafePath, read_private_file
from ..errors import UsageError, ValidationError

__all__ = ["DB_NAME", "ENV_HOME", "ENV_STORE_URL", "ENV_STORE_URL_FILE", "default_home", "has_password"]
__all__ += ["select_store", "sqlite_path", "store_kind"]

ENV_STORE_URL = "CONNECTOR_STORE_URL"
ENV_STORE_URL_FILE = "CONNECTOR_STORE_URL_FILE"
ENV_HOME = "CONNECTOR_HOME"
DB_NAME = "connector.db"
SQLITE_SCHEMES = ("sqlite",)
POSTGRES_SCHEMES = ("postgresql", "postgres")


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """The folder of the default SQLite store: ``CONNECTOR_HOME``, else the user data dir."""
    env = os.environ if env is None else env
    if env.get(ENV_HOME):
        return Path(env[ENV_HOME]).expanduser()
    from platformdirs import user_data_path  # only when needed: the CLI's cold start

    return user_data_path("connector-core", appauthor=False)


def store_kind(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"`` for a store URL; a ValidationError for anything else."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in SQLITE_SCHEMES:
        return "sqlite"
    if scheme in POSTGRES_SCHEMES:
        return "postgresql"
    raise ValidationError("store URL", f"expected sqlite:///PATH or postgresql://..., got {shown_url(url)!r}")


def split_url(url: str) -> SplitResult:
    """``url`` taken apart; a malformed one is a ValidationError that does not repeat it (it may hold a password)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number is malformed too
    except ValueError as exc:
        raise ValidationError("store URL", f"malformed URL ({exc})") from None
    return parts


def sqlite_path(url: str) -> Path:
    """The database file a ``sqlite:`` URL names."""
    parts = split_url(url)
    if parts.netloc not in ("", "localhost"):
        raise ValidationError("store URL", f"a sqlite URL names a local file (sqlite:///PATH), got {url!r}")
    raw = unquote(parts.path)
    if not raw:
        raise ValidationError("store URL", "a sqlite URL needs a path: sqlite:///PATH/connector.db")
    if raw.startswith("//"):  # sqlite:////abs/path, SQLAlchemy's spelling of an absolute path
        raw = raw[1:]
    path = Path(raw).expanduser()
    if path.is_dir():
        path = path / DB_NAME
    return path


def has_password(url: str) -> bool:
    """Whether ``url`` holds a password (``user:PASSWORD@host``, or a ``password`` parameter)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ":" in url.split("@", 1)[0] if "@" in url else False
    return parts.password is not None or any(k == "password" for k, _ in parse_qsl(parts.query))


def url_from_file(path: str) -> str:
    """The store URL in the file ``path`` (``CONNECTOR_STORE_URL_FILE``), which must be private to its owner."""
    try:
        text = read_private_file(Path(path)).decode("utf-8").strip()
    except UnsafePath as exc:
        raise ValidationError(ENV_STORE_URL_FILE, f"refusing {path}: {exc}") from None
    except OSError as exc:
        raise ValidationError(ENV_STORE_URL_FILE, f"cannot read {path} ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ValidationError(ENV_STORE_URL_FILE, f"{path} is not UTF-8 text") from None
    if not text or "\n" in text:
        raise ValidationError(ENV_STORE_URL_FILE, f"{path} must hold one store URL on one line")
    return text


def shown_url(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "a malformed URL"
    if "@" in parts.netloc and ":" in parts.netloc.rsplit("@", 1)[0]:
        user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
        return parts._replace(netloc=f"{user}:***@{parts.netloc.rsplit('@', 1)[1]}").geturl()
    return url


def select_store(
    url: str | None = None, home: str | Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[str, Path | str]:
    """Which store the arguments and environment select (see the module doc), without
    opening it: ``("sqlite", database file)`` or ``("postgresql", URL)``."""
    environ = os.environ if env is None else env
    if url and home is not None:
        raise UsageError("give --store-url or --home, not both")
    chosen = url
    if not chosen and home is None:
        chosen = environ.get(ENV_STORE_URL) or (
            url_from_file(environ[ENV_STORE_URL_FILE]) if environ.get(ENV_STORE_URL_FILE) else None
        )
    if chosen and store_kind(chosen) == "postgresql":
        split_url(chosen)
        return "postgresql", chosen
    if chosen:
        return "sqlite", sqlite_path(chosen)
    base = Path(home).expanduser() if home is not None else default_home(environ)
    return "sqlite", base / DB_NAME

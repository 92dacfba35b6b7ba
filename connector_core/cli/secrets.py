"""Reading a secret field's value: from an environment variable (``--FIELD-env VAR``), a file
(``--FIELD-file PATH``), or a prompt without echo; never from argv (``--FIELD VALUE`` is refused
without printing VALUE)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError, ValidationError
from ..secret import Secret

if TYPE_CHECKING:
    from ..models import CredentialField

__all__ = ["MAX_SECRET_FILE_BYTES", "RefuseSecretOnArgv", "add_field_option", "option_name", "read_secret"]

MAX_SECRET_FILE_BYTES = 64 * 1024


def option_name(field: CredentialField) -> str:
    """The field's command-line option: ``client_secret`` is ``--client-secret``."""
    return "--" + field.name.replace("_", "-")


class RefuseSecretOnArgv(argparse.Action):
    """``--client-secret VALUE`` is refused without ever printing VALUE: argv is visible to
    every user of the machine (``ps``) and lands in shell history."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        raise UsageError(
            f"{option_string}: secrets are never taken from the command line; use {option_string}-env VAR, "
            f"{option_string}-file PATH, or leave it out to be prompted"
        )


def add_field_option(group: Any, field: CredentialField, dest: str, *, prompted: bool = False) -> None:
    """The options of one credential field: ``--NAME VALUE`` for a plain one; for a secret one,
    ``--NAME-env VAR`` or ``--NAME-file PATH`` (``prompted``: else a prompt), and ``--NAME VALUE``
    refused without echoing VALUE. Values land in ``dest`` (``dest__env``, ``dest__file``)."""
    opt = option_name(field)
    help_text = field.help or field.label
    if not field.secret:
        group.add_argument(opt, metavar="VALUE", dest=dest, help=help_text)
        return
    group.add_argument(opt, nargs="?", action=RefuseSecretOnArgv, help=argparse.SUPPRESS, dest=f"{dest}__argv")
    either = group.add_mutually_exclusive_group()
    either.add_argument(
        f"{opt}-env",
        metavar="VAR",
        dest=f"{dest}__env",
        help=f"read {field.label} from environment variable VAR{' (else a prompt)' if prompted else ''}. {help_text}",
    )
    either.add_argument(
        f"{opt}-file",
        metavar="PATH",
        dest=f"{dest}__file",
        help=f"read {field.label} from a file (UTF-8, at most {MAX_SECRET_FILE_BYTES // 1024} KiB)",
    )


def read_secret(field: CredentialField, env_var: str | None, path: str | None, *, prompt: bool) -> Secret | None:
    opt = option_name(field)
    if env_var is not None:
        value = os.environ.get(env_var)
        if not value:
            raise ValidationError(field.name, f"environment variable {env_var} ({opt}-env) is not set or empty")
        return Secret(value)
    if path is not None:
        return Secret(_read_secret_file(field, Path(path)))
    if not prompt:
        return None
    if not field.required:
        return None
    if not (sys.stdin is not None and sys.stdin.isatty()):
        raise ValidationError(
            field.name,
            f"{field.label} is required; pass {opt}-env VAR or {opt}-file PATH (there is no terminal to prompt on)",
        )
    import getpass  # here, not at the top: only a prompt needs it

    value = getpass.getpass(f"{field.label}: ")
    if not value:
        raise ValidationError(field.name, f"{field.label} is required and was empty")
    return Secret(value)


def _read_secret_file(field: CredentialField, path: Path) -> str:
    where = f"{field.name} file {path}"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ValidationError(where, "does not exist") from None
    except IsADirectoryError:
        raise ValidationError(where, "is a folder, expected a file") from None
    except OSError as exc:
        raise ValidationError(where, f"cannot be read ({exc.strerror})") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise ValidationError(where, f"is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(where, "is not UTF-8 text") from None
    text = text.removeprefix("\ufeff").rstrip("\r\n")
    if not text.strip():
        raise ValidationError(where, "is empty")
    return text

"""Whose a connection is, on the command line: the owner options of ``connect`` and
``connections attach`` (the platform's end user, their organisation, tags) and the owner
filters of ``connections list``, each bad value a one-line error naming its option.

The end user's email and name are ``--end-user-email`` and ``--end-user-name``, not ``--email``
and ``--name``: ``connect`` also takes the options of the profile's provider's credential fields
(:mod:`connector_core.cli.credentials`), and a provider whose end users sign in with an email and
an API token has a field named ``email``, whose option would clash with ours.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ValidationError

if TYPE_CHECKING:
    from ..connection import Owner

__all__ = ["OWNER_OPTIONS", "add_owner_filters", "add_owner_options", "owner_filters", "owner_from"]

#: The option that gives each field the library names in its errors.
OWNER_OPTIONS = {
    "end_user.id": "--end-user",
    "end_user.email": "--end-user-email",
    "end_user.display_name": "--end-user-name",
    "organisation": "--organisation",
    "tags": "--tag",
    "tag": "--tag",
}

_END_USER = "the platform's own id for its end user (1-200 printable characters, no spaces)"
_ORGANISATION = "the end user's organisation, as the platform names it (1-200 printable characters, no spaces)"
_TAG = "lower-case letters, digits, '.', '_', ':' or '-', such as team:payroll"


def add_owner_options(parser: argparse.ArgumentParser, *, end_user_required: bool = False) -> None:
    """``--end-user ID [--end-user-email E] [--end-user-name N] [--organisation O] [--tag T ...]``."""
    group = parser.add_argument_group(
        "owner",
        "Whose the connection is: an end user of the platform, their organisation, and tags to filter by. "
        "Without --end-user the connection is unclaimed until 'connector connections attach' gives it one.",
    )
    group.add_argument("--end-user", dest="owner_end_user", metavar="ID", required=end_user_required, help=_END_USER)
    group.add_argument(
        "--end-user-email", dest="owner_email", metavar="EMAIL", help="the end user's email (with --end-user)"
    )
    group.add_argument(
        "--end-user-name", dest="owner_name", metavar="NAME", help="the end user's display name (with --end-user)"
    )
    group.add_argument("--organisation", dest="owner_organisation", metavar="ID", help=_ORGANISATION)
    group.add_argument(
        "--tag", dest="owner_tags", action="append", metavar="TAG", help=f"a tag ({_TAG}); repeat it for more"
    )


def owner_from(args: argparse.Namespace) -> Owner | None:
    """The owner the options give, checked (before anything is sent or stored), or ``None`` when no
    owner option was given."""
    # Here, not at the top: the connection records are built only when a command runs (cold start).
    from ..connection import EndUser, Owner

    end_user, email, name = args.owner_end_user, args.owner_email, args.owner_name
    organisation, tags = args.owner_organisation, args.owner_tags or []
    if end_user is None:
        for option, given in (("--end-user-email", email), ("--end-user-name", name)):
            if given is not None:
                raise ValidationError(option, "is the end user's: give --end-user ID with it")
        if organisation is None and not tags:
            return None
    return _checked(
        lambda: Owner(EndUser(end_user, email, name) if end_user is not None else None, organisation, tuple(tags))
    )


def add_owner_filters(parser: argparse.ArgumentParser) -> None:
    """``connections list``'s owner filters: ``--end-user``, ``--organisation``, ``--tag``, ``--provider``,
    ``--unclaimed`` (not with ``--end-user``)."""
    whose = parser.add_mutually_exclusive_group()
    whose.add_argument("--end-user", metavar="ID", help="only this end user's connections")
    whose.add_argument("--unclaimed", action="store_true", help="only connections no end user owns yet")
    parser.add_argument("--organisation", metavar="ID", help="only this organisation's connections")
    parser.add_argument("--tag", metavar="TAG", help="only connections with this tag")
    parser.add_argument("--provider", metavar="KEY", help="only this provider's connections")


def owner_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``Store.list_connections`` the filters give, checked as an owner's
    values are (a tag in capitals could never match, so it is an error rather than no connections)."""
    # Here, not at the top: see owner_from.
    from ..connection import EndUser, Owner

    if args.end_user is not None:
        _checked(lambda: EndUser(args.end_user))
    if args.organisation is not None or args.tag is not None:
        _checked(lambda: Owner(organisation=args.organisation, tags=(args.tag,) if args.tag is not None else ()))
    return {
        "end_user": args.end_user,
        "organisation": args.organisation,
        "tag": args.tag,
        "provider": args.provider,
        "unclaimed": args.unclaimed,
    }


_T = TypeVar("_T")


def _checked(build: Callable[[], _T]) -> _T:
    """``build()``, its ValidationError naming the option rather than the library's field."""
    try:
        return build()
    except ValidationError as exc:
        option = OWNER_OPTIONS.get(exc.field)
        if option is None:
            raise
        raise ValidationError(option, exc.message[len(exc.field) + 2 :]) from None

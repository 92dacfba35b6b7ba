"""``connector scopes``: a provider's scope catalogue, a check of a requested scope set, or the
least scope set for some actions."""

from __future__ import annotations

import argparse
from typing import IO, TYPE_CHECKING

from ..errors import UnknownNameError, UsageError, ValidationError
from ..registries import Command
from ..serialize import to_data
from .output import EXIT_INVALID, EXIT_OK, add_json, emit_json, run_handler, table
from .parser import HELP

if TYPE_CHECKING:
    from ..models import ScopeCatalogue
    from ..plugins import Plugins

__all__ = ["COMMAND"]


def configure(scopes: argparse.ArgumentParser) -> None:
    scopes.add_argument("provider", metavar="PROVIDER")
    scopes.add_argument("--group", metavar="GROUP", help="show only this feature area")
    mode = scopes.add_mutually_exclusive_group()
    mode.add_argument("--check", nargs="+", metavar="SCOPE", help="check a requested scope set")
    mode.add_argument("--for-actions", nargs="+", metavar="ACTION", help="the least scope set for these actions")
    add_json(scopes)
    scopes.set_defaults(handler=_scopes)


COMMAND = Command("scopes", HELP["scopes"], configure, run_handler)


def _scopes(args: argparse.Namespace, plugins: Plugins, out: IO[str]) -> int:
    key = args.provider
    if args.group and (args.check or args.for_actions):
        other = "--check" if args.check else "--for-actions"
        raise UsageError(f"connector scopes: --group cannot be combined with {other}")
    if args.for_actions:  # actions live in the whole declaration
        from ..scopes import scopes_for_actions  # here, not at the top: only this mode needs it (cold start)

        decl = plugins.declaration(key)
        if decl.scope_catalogue is None:
            raise ValidationError("provider", f"{key!r} declares no OAuth scopes")
        actions = [a for arg in args.for_actions for a in arg.replace(",", " ").split()]
        scopes = scopes_for_actions(decl, actions)
        if args.json:
            emit_json(out, {"provider": key, "actions": actions, "scopes": list(scopes)})
        else:
            out.write(" ".join(scopes) + "\n")
        return EXIT_OK
    # Listing and checking need only the catalogue: the other hooks are not asked.
    catalogue = plugins.scope_catalogue(key)
    if catalogue is None:
        raise ValidationError("provider", f"{key!r} declares no OAuth scopes")
    if args.check:
        return _scopes_check(args, key, catalogue, out)

    groups = catalogue.groups
    if args.group:
        group = catalogue.group(args.group)
        if group is None:
            raise UnknownNameError("scope group", args.group, [g.key for g in groups], within=f"provider {key!r}")
        groups = (group,)
    if args.json:
        emit_json(
            out,
            {
                "provider": key,
                "groups": to_data(groups),
                "default_scopes": list(catalogue.default_scopes),
                "minimum_scopes": list(catalogue.minimum_scopes),
            },
        )
        return EXIT_OK
    for group in groups:
        out.write(f"{group.label} [{group.key}]\n")
        if group.description:
            out.write(f"  {group.description}\n")
        rows = []
        for s in group.scopes:
            marks = [
                m
                for m, on in (
                    ("default", s.name in catalogue.default_scopes),
                    ("minimum", s.name in catalogue.minimum_scopes),
                    ("sensitive", s.sensitive),
                )
                if on
            ]
            rows.append((s.name, s.access.value, s.module or "", ", ".join(marks), s.description))
        table(out, ("SCOPE", "ACCESS", "MODULE", "FLAGS", "DESCRIPTION"), rows, indent="  ")
        for s in group.scopes:
            for note in s.notes:
                out.write(f"  note: {s.name}: {note}\n")
        out.write("\n")
    out.write(f"default: {' '.join(catalogue.default_scopes)}\n")
    out.write(f"minimum: {' '.join(catalogue.minimum_scopes)}\n")
    return EXIT_OK


def _scopes_check(args: argparse.Namespace, key: str, catalogue: ScopeCatalogue, out: IO[str]) -> int:
    from ..scopes import check_scopes, parse_scopes  # here, not at the top: only --check needs them (cold start)

    requested = parse_scopes(args.check, field="--check")
    result = check_scopes(catalogue, requested)
    if args.json:
        emit_json(
            out,
            {
                "provider": key,
                "requested": list(result.requested),
                "ok": result.ok,
                "findings": to_data(result.findings),
            },
        )
    else:
        for finding in result.findings:
            out.write(f"{finding.severity.value}: {finding.message}\n")
        errors, warnings = len(result.errors), len(result.warnings)
        verdict = "ok" if result.ok else "invalid"
        out.write(
            f"{verdict}: {_count(len(result.requested), 'scope')}, {_count(errors, 'error')}, "
            f"{_count(warnings, 'warning')}\n"
        )
    return EXIT_OK if result.ok else EXIT_INVALID


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

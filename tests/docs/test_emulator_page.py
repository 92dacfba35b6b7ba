"""docs/emulator.md keeps up with the emulator's public names and command-line options."""

from __future__ import annotations

import argparse
import inspect
import re

from support import REPO

import connector_core.emulator as emulator
from connector_core.cli import emulate as emulate_cli
from connector_core.cli.output import Parser

DOC = (REPO / "docs" / "emulator.md").read_text()


def test_every_public_name_is_documented() -> None:
    missing = [name for name in emulator.__all__ if f"`{name}`" not in DOC]
    assert missing == []


def test_every_public_class_and_function_has_a_docstring() -> None:
    checked = 0
    for name in emulator.__all__:
        obj = getattr(emulator, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, name
            checked += 1
    assert checked >= 20


def test_every_option_of_connector_emulate_is_documented() -> None:
    parser = Parser(prog="connector")
    sub = parser.add_subparsers(parser_class=Parser)
    emulate_cli.COMMAND.configure(sub.add_parser("emulate"))
    emulate = sub.choices["emulate"]
    options = {
        option
        for action in emulate._actions
        if not isinstance(action, argparse._HelpAction)
        for option in action.option_strings
    }
    assert "--uninstall" in options
    documented = set(re.findall(r"--[a-z][a-z-]+", DOC))
    assert options - documented == set()


def test_the_documented_headers_are_the_real_ones() -> None:
    for header in (emulator.CONSENT_HEADER, emulator.AUDIENCE_HEADER, emulator.COMPANY_HEADER):
        assert f"`{header}:" in DOC or f"`{header}`" in DOC, header

"""`--help` that reads like a manual page: `--listen HOST:PORT`, never `--json <bool>`.

Typer shows every parameter's type in angle brackets (`<str>`, `<int range>`,
`<path>` beside an argument) and an argument in braces (`{paths}...`). The
application's group and commands use these classes instead: a flag shows no
value at all, an option shows its `metavar` (or a plain word for its type:
TEXT, N, NUMBER, PATH), and an argument shows its name in capitals, the way
the commands' own help speaks of it ("Back up PATHS").
"""

from __future__ import annotations

import copy
from typing import Any

import typer.core

# Words for the value of an option that names none itself, by its type's name.
_WORDS = {
    "str": "TEXT",
    "int": "N",
    "int range": "N",
    "float": "NUMBER",
    "float range": "NUMBER",
    "path": "PATH",
    "file": "FILE",
    "directory": "DIR",
}


class ReadableOption(typer.core.TyperOption):
    def make_metavar(self, ctx: Any) -> str:
        if self.is_flag or self.count:
            return ""
        if self.metavar is not None:
            return self.metavar
        named = self.type.get_metavar(param=self, ctx=ctx)  # a choice's [a|b]
        return named or _WORDS.get(self.type.name, self.type.name.upper())


class ReadableArgument(typer.core.TyperArgument):
    def make_metavar(self, ctx: Any, *, usage: bool = False) -> str:
        # `backup PATHS...`, as manual pages write it, not typer's `{paths}...`.
        name = (self.metavar or "") + ("..." if self.nargs != 1 else "")
        return f"[{name}]" if usage and not self.required else name


def _shown_without_type(kind: Any) -> Any:
    """A copy of an argument's type that parses the same and names no type in help."""
    shown = copy.copy(kind)
    shown.get_metavar = lambda param, ctx: ""
    return shown


def readable(params: list[Any]) -> list[Any]:
    """The same parameters, each shown the readable way (their parsing is untouched)."""
    for param in params:
        if type(param) is typer.core.TyperOption:
            param.__class__ = ReadableOption
        elif type(param) is typer.core.TyperArgument:
            param.__class__ = ReadableArgument
            param.metavar = param.metavar or (param.name or "").upper()
            param.type = _shown_without_type(param.type)
    return params


class ReadableCommand(typer.core.TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return readable(super().get_params(ctx))


class ReadableGroup(typer.core.TyperGroup):
    """The application (or a sub-application): its commands are shown readably too."""

    def get_params(self, ctx: Any) -> list[Any]:
        return readable(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if type(command) is typer.core.TyperCommand:
            command.__class__ = ReadableCommand
        elif type(command) is typer.core.TyperGroup:
            command.__class__ = ReadableGroup
        return command

"""`--help` that reads like a manual page: `--listen HOST:PORT`, never `--json <bool>`.

Typer shows every parameter's Python type in angle brackets (`<str>`,
`<list[str]>`, `<bool>` even for a flag and for `--help` itself). The
application's group and commands use these classes instead: a flag shows no
value at all, an option shows its `metavar` (or a plain word for its type:
TEXT, N, NUMBER, PATH), and an argument shows its name in capitals, the way
the commands' own help speaks of it ("Back up PATHS").
"""

from __future__ import annotations

from typing import Any

import typer.core

# Words for the value of an option that names none itself, by its Python type.
_WORDS = {"str": "TEXT", "int": "N", "float": "NUMBER", "Path": "PATH"}


class ReadableOption(typer.core.TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        if self.metavar is not None:
            return self.metavar
        annotation = self.bare_type()
        inner = annotation.removeprefix("list[").removesuffix("]")
        return _WORDS.get(inner, inner.upper())


class ReadableArgument(typer.core.TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def _usage_display_name(self) -> str:
        # `backup PATHS...`, as manual pages write it, not typer's `{PATHS}...`.
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def readable(params: list[Any]) -> list[Any]:
    """The same parameters, each shown the readable way (their parsing is untouched)."""
    for param in params:
        if type(param) is typer.core.TyperOption:
            param.__class__ = ReadableOption
        elif type(param) is typer.core.TyperArgument:
            param.__class__ = ReadableArgument
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

"""Help that reads like a command line, not like Python: `TEXT`, `INTEGER`, `PATH` for values.

Typer 0.29 labels every parameter with its Python annotation (`<list[str]>`, `<bool>` on flags,
`{sources}...` in the usage line). `plain_help` re-labels the built click commands once per run;
parsing is untouched (only the display methods differ).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from typer._click import Context
from typer.core import TyperArgument, TyperOption

_WORDS: dict[Any, str] = {int: "INTEGER", float: "NUMBER", Path: "PATH"}


def _word(param: TyperArgument | TyperOption) -> str:
    """The value's kind in one word; a choice lists its values."""
    desc = param.type_descriptor
    if desc.is_choice:
        return "|".join(str(c) for c in desc.choices or ())
    if desc.is_path:
        return "PATH"
    annotation = get_args(desc.annotation)[0] if desc.is_list else desc.annotation
    return _WORDS.get(annotation, "TEXT")


class _PlainOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None  # a flag takes no value: nothing to show
        return self.metavar or _word(self)


class _PlainArgument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return _word(self)

    def _usage_display_name(self) -> str:
        """`SOURCES...` when required, `[NAME]` when not (click's own convention)."""
        name = self.display_name_raw.upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")


def plain_help(command: Any) -> None:
    """Re-label the parameters of `command` and of every command under it (--help included:
    click makes that option on first use and keeps it, so it is made here)."""
    help_option = command.get_help_option(Context(command))
    for param in [*command.params, help_option]:
        if type(param) is TyperOption:
            param.__class__ = _PlainOption
        elif type(param) is TyperArgument:
            param.__class__ = _PlainArgument
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)

"""Environment formats: format id → parser, and the one entry point `parse_environment`.

Built-ins are named "module:Class" the way the catalog registry names its importers, imported on
first use. Parsers are pure (bytes in, ParsedEnvironment out); every problem is an Issue with a
location, and `parse_environment` refuses a file with any error, listing them all, so no caller
can store half an environment.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Protocol

from app.core.errors import InvalidInput, Location, TooLarge

if TYPE_CHECKING:
    from app.core.config import Limits
    from app.environment.models import ParsedEnvironment

FORMATS: dict[str, str] = {
    "dettect": "app.environment.formats.dettect:DettectFormat",
    "kbmap": "app.environment.formats.kbmap:KbmapFormat",
}
FORMAT_IDS = tuple(FORMATS)
AUTO = "auto"


class EnvironmentFormat(Protocol):
    """What a format module's class provides."""

    format_id: str
    title: str

    def sniff(self, name: str, data: bytes) -> bool: ...

    def parse(self, name: str, data: bytes, limits: Limits) -> ParsedEnvironment: ...


@cache
def get_format(format_id: str) -> EnvironmentFormat:
    """The parser of `format_id`; an unknown id is an error listing the known ones."""
    spec = FORMATS.get(format_id)
    if spec is None:
        known = ", ".join((AUTO, *FORMAT_IDS))
        raise InvalidInput(
            f"unknown environment format {format_id!r}; known: {known}", Location(field="format")
        )
    module, _, name = spec.partition(":")
    parser: EnvironmentFormat = getattr(import_module(module), name)()
    return parser


def detect(name: str, data: bytes) -> str:
    """auto: a DeTT&CT file says so in `file_type`; anything else is read as kbmap's format
    (which then names what it does not understand)."""
    return "dettect" if get_format("dettect").sniff(name, data) else "kbmap"


def parse_environment(
    name: str, data: bytes, *, format_id: str = AUTO, limits: Limits
) -> ParsedEnvironment:
    """Bytes → ParsedEnvironment, bounded in size; InvalidInput carrying every error if any.

    Warnings stay in `issues` for the import report."""
    if len(data) > limits.max_upload_bytes:
        raise TooLarge(f"size exceeds the limit of {limits.max_upload_bytes} bytes", Location(name))
    chosen = detect(name, data) if format_id == AUTO else format_id
    parsed = get_format(chosen).parse(name, data, limits)
    errors = [i for i in parsed.issues if i.severity == "error"]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"{first.message}{more}", first.location, issues=errors)
    return parsed


__all__ = ["FORMATS", "FORMAT_IDS", "detect", "get_format", "parse_environment"]

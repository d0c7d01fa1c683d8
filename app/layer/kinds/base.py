"""What a layer kind is: its parameters, `gather` (the queries) and `build` (pure).

Kind modules import only light modules at the top (typing, `app.core.errors`, this one): the CLI
lists every kind with its help when `kbmap` starts, and that must not load the service stack.
`gather` queries through the `Sources` it is handed; `build` imports the entry helpers and
Navigator models (`app.layer.entries`) once when it runs, never per entry (an import statement
costs microseconds, and a layer has hundreds of entries).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Generic, Literal, TypeVar

if TYPE_CHECKING:
    from app.coverage.service import Scope
    from app.layer.entries import LayerContext
    from app.layer.navigator import Layer
    from app.layer.sources import Sources

Found = TypeVar("Found")
MAX_LISTED = 12  # groups, data components... named in one metadata value


@dataclass(frozen=True)
class LayerRequest:
    """What a layer call carries: the route and the CLI take the same options for every kind
    (one query string serves `/layers/{kind}`), and each kind takes only its own from it."""

    kind: str
    base_url: str = "http://127.0.0.1:8000"
    collected: list[str] = field(default_factory=list)
    a: list[str] = field(default_factory=list)
    b: list[str] = field(default_factory=list)
    from_version: str | None = None
    to_version: str | None = None
    min_score: float = 0.0
    split: Literal["platform"] | None = None


@dataclass(frozen=True)
class LayerKind(ABC, Generic[Found]):
    """One kind of layer. Its dataclass fields are the parameters it takes, named as the
    `LayerRequest` options they come from (lists arrive split at commas); `Found` is what
    `gather` hands `build`."""

    name: ClassVar[str]  # the path segment and CLI command
    help: ClassVar[str]  # the CLI command's help
    noun: ClassVar[str]  # how the layer route's description names it ("a threat")
    # environment= is refused, never ignored, by a kind that does not read the scope's environment
    takes_environment: ClassVar[bool] = False
    environment_hint: ClassVar[str] = ""  # what the refusal suggests instead

    def shown_version(self, scope: Scope) -> str:
        """The release the layer shows (file name, matrix, context): the scope's by default."""
        return scope.release.version

    @abstractmethod
    def gather(self, src: Sources, scope: Scope) -> Found:
        """The rows the layer is built from; raises InvalidInput naming a missing parameter."""

    @abstractmethod
    def build(self, ctx: LayerContext, found: Found) -> Layer:
        """Pure: the Navigator layer from what `gather` found."""


def listed(values: Sequence[str]) -> str:
    """Up to MAX_LISTED values named, the rest counted (a plain string helper, so kinds call it
    per entry without importing the entry machinery)."""
    shown = ", ".join(values[:MAX_LISTED])
    return f"{shown} and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else shown

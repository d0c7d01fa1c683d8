"""The layer kinds, by name: the table `/layers/{kind}`, `kbmap layer <kind>` and their help read.

Adding a kind is one module here with one `LayerKind` class (its parameters, `gather`, `build`,
`help`) and one line in `KINDS`; the route's path parameter, its description and the CLI command
follow from the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from app.layer.kinds.base import LayerKind, LayerRequest
from app.layer.kinds.compare import Compare
from app.layer.kinds.coverage import Coverage
from app.layer.kinds.delta import Delta
from app.layer.kinds.diff import Diff
from app.layer.kinds.effective import Effective
from app.layer.kinds.gaps import Gaps
from app.layer.kinds.telemetry import Telemetry
from app.layer.kinds.threat import Threat
from app.layer.kinds.visibility import Visibility

KINDS: dict[str, type[LayerKind[Any]]] = {
    kind.name: kind
    for kind in (
        Coverage,
        Gaps,
        Threat,
        Telemetry,
        Compare,
        Diff,
        Effective,
        Visibility,
        Delta,
    )
}

if TYPE_CHECKING:
    KindName = str
else:  # the route's path parameter: an unknown kind is a 422 that lists the known ones
    KindName = Literal[tuple(KINDS)]


def described() -> str:
    """The kinds as the layer route's description names them: "coverage, gaps, … or a diff"."""
    nouns = [kind.noun for kind in KINDS.values()]
    return f"{', '.join(nouns[:-1])} or {nouns[-1]}"


__all__ = ["KINDS", "KindName", "LayerKind", "LayerRequest", "described"]

"""Light rows of ATT&CK objects, as pages read them: plain tuples, no ORM instances.

ORM instances and decoding every `data` (an 18+ data component's runs to 32 kB) were half of a
technique page's render time, so pages read these columns and decode `data` only when asked.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from sqlalchemy import Text, cast
from sqlmodel import col

from app.attack.tables import AttackObject


class ObjectRow(NamedTuple):
    """The columns of an object that pages show, its STIX extras decoded only when read."""

    stix_id: str
    kind: str
    attack_id: str | None
    name: str
    description: str
    url: str | None
    revoked: bool
    deprecated: bool
    platforms: list[str]
    data_json: str

    @property
    def data(self) -> dict[str, Any]:
        return orjson.loads(self.data_json)  # type: ignore[no-any-return]


class Brief(NamedTuple):
    """The few columns a page shows of a related object (no JSON decoding)."""

    stix_id: str
    kind: str
    attack_id: str | None
    name: str
    revoked: bool
    deprecated: bool

    @property
    def live(self) -> bool:
        return not self.revoked and not self.deprecated


# The columns of an `ObjectRow`, in its order; `data` comes raw (see ObjectRow)
OBJECT_COLUMNS = (
    *(col(getattr(AttackObject, f)) for f in ObjectRow._fields[:-1]),
    cast(col(AttackObject.data), Text),
)
# The columns of a `Brief`, in its order (coverage reads the same light rows)
BRIEF_COLUMNS = (
    col(AttackObject.stix_id),
    col(AttackObject.kind),
    col(AttackObject.attack_id),
    col(AttackObject.name),
    col(AttackObject.revoked),
    col(AttackObject.deprecated),
)

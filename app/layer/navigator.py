"""ATT&CK Navigator layer format 4.5 as pydantic models: the only module that knows the format.

Builders construct these models and never write dicts, so every layer kbmap emits is well-formed
by construction (no empty strings, hex colours, a gradient with max > min). The same models read
uploaded layers, so an import refuses a malformed layer with the path of the bad field.
Navigator's own exports write unset text as "" (`"color": ""`, `"comment": ""`); reading turns
those into "absent", writing never produces them. Spec: attack-navigator `layers/spec/v4.5`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    TypeAdapter,
    field_validator,
    model_validator,
)

LAYER_VERSION = "4.5"
NAVIGATOR_VERSION = "5.1.0"  # a current Navigator (4.5 layers need 4.9.0 or later)
DOMAINS = ("enterprise-attack", "mobile-attack", "ics-attack")

Text = Annotated[str, Field(min_length=1, max_length=10_000)]
Color = Annotated[str, Field(pattern=r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")]
Url = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$", max_length=2_000)]
TechniqueId = Annotated[str, Field(pattern=r"^T\d{4}(?:\.\d{3})?$")]
TacticName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=80)]


def _compact(value: float) -> int | float:
    """Whole numbers are written as integers (Navigator tools read gradient bounds as ints)."""
    return int(value) if value.is_integer() else value


Number = Annotated[
    float,
    Field(strict=True, allow_inf_nan=False),
    PlainSerializer(_compact, return_type=int | float),
]


class _Model(BaseModel):
    """Unknown fields are ignored on read (Navigator versions add some); never written."""

    model_config = ConfigDict(extra="ignore")


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class Versions(_Model):
    attack: Annotated[str, Field(pattern=r"^\d+(?:\.\d+)?$")] | None = None
    navigator: Annotated[str, Field(pattern=r"^\d+\.\d+(?:\.\d+)?$")] = NAVIGATOR_VERSION
    layer: Annotated[str, Field(pattern=r"^4\.\d$")] = LAYER_VERSION


class Filters(_Model):
    platforms: list[Text] = Field(min_length=1)


class Layout(_Model):
    layout: Literal["side", "flat", "mini"] = "side"
    aggregateFunction: Literal["average", "min", "max", "sum"] = "average"
    showID: bool = True
    showName: bool = True
    showAggregateScores: bool = False
    countUnscored: bool = False
    expandedSubtechniques: Literal["none", "all", "annotated"] = "annotated"


class MetadataItem(_Model):
    name: Text
    value: Text


class Divider(_Model):
    divider: bool


class Link(_Model):
    label: Text
    url: Url


def _entry_kind(value: Any) -> str:
    """Metadata and link lists mix items with dividers (`{"divider": true}`)."""
    if type(value) is dict:
        return "divider" if "divider" in value else "item"
    return "divider" if type(value) is Divider else "item"


MetadataEntry = Annotated[
    Annotated[MetadataItem, Tag("item")] | Annotated[Divider, Tag("divider")],
    Discriminator(_entry_kind),
]
LinkEntry = Annotated[
    Annotated[Link, Tag("item")] | Annotated[Divider, Tag("divider")],
    Discriminator(_entry_kind),
]


class Technique(_Model):
    """One annotation; without `tactic` it applies under every tactic of the technique."""

    techniqueID: TechniqueId
    tactic: TacticName | None = None
    score: Number | None = None
    color: Color | None = None
    comment: Text | None = None
    enabled: bool | None = None  # absent = true
    metadata: list[MetadataEntry] | None = None
    links: list[LinkEntry] | None = None
    showSubtechniques: bool | None = None

    _blanks = field_validator("tactic", "color", "comment", mode="before")(_blank_to_none)

    @field_validator("metadata", "links", mode="after")
    @classmethod
    def _empty_list_is_absent(cls, value: list[Any] | None) -> list[Any] | None:
        return value or None

    @property
    def is_enabled(self) -> bool:
        return self.enabled is not False

    @property
    def annotated(self) -> bool:
        """Says something about the technique (not only view state such as showSubtechniques)."""
        return bool(
            self.score is not None or self.color or self.comment or self.metadata or self.links
        )


class Gradient(_Model):
    colors: list[Color] = Field(min_length=2)
    minValue: Number
    maxValue: Number

    @model_validator(mode="after")
    def _ordered(self) -> Gradient:
        if self.maxValue <= self.minValue:
            raise ValueError("gradient maxValue must be greater than minValue")
        return self


class LegendItem(_Model):
    label: Text
    color: Color


class Layer(_Model):
    name: Text
    versions: Versions = Field(default_factory=Versions)
    domain: Literal["enterprise-attack", "mobile-attack", "ics-attack"]
    description: Text | None = None
    filters: Filters | None = None
    sorting: Literal[0, 1, 2, 3] = 0
    layout: Layout = Field(default_factory=Layout)
    hideDisabled: bool = False
    techniques: list[Technique] = Field(default_factory=list)
    gradient: Gradient | None = None
    legendItems: list[LegendItem] | None = None
    showTacticRowBackground: bool = False
    tacticRowBackground: Color = "#dddddd"
    selectTechniquesAcrossTactics: bool = True
    selectSubtechniquesWithParent: bool = False
    selectVisibleTechniques: bool = False
    metadata: list[MetadataEntry] | None = None
    links: list[LinkEntry] | None = None

    _blanks = field_validator("description", mode="before")(_blank_to_none)

    @field_validator("legendItems", "metadata", "links", mode="after")
    @classmethod
    def _empty_list_is_absent(cls, value: list[Any] | None) -> list[Any] | None:
        return value or None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object Navigator reads: unset optional fields are left out, not null."""
        return self.model_dump(mode="json", exclude_none=True)


_LAYERS = TypeAdapter(list[Layer])


def dump_layers(layers: Layer | list[Layer]) -> bytes:
    """One layer as an object, several as a list (Navigator opens a list as several tabs).

    Serialised by pydantic-core straight to bytes: no intermediate dict tree to allocate.
    """
    if isinstance(layers, Layer):
        return layers.model_dump_json(exclude_none=True).encode()
    return _LAYERS.dump_json(layers, exclude_none=True)


def read_layers(doc: Any) -> list[Layer]:
    """Validate a parsed JSON document as one layer or a list of layers.

    Raises pydantic.ValidationError; error locations start with the list index for a list, so a
    caller can name the field (`[1].techniques.3.score`).
    """
    if isinstance(doc, list):
        return _LAYERS.validate_python(doc)
    return [Layer.model_validate(doc)]

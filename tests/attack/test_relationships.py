"""The one relationship reader, checked against the raw bundle on both backends."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session

from app.attack import service
from tests import rawdata

E18 = "enterprise-attack-18.1.json.gz"


def _raw(rtype: str, *, revoked: bool | None = False) -> set[tuple[str, str, str, str]]:
    """(type, source, target, description) of the raw relationships of one type."""
    return {
        (o["relationship_type"], o["source_ref"], o["target_ref"], o.get("description") or "")
        for o in rawdata.objects(E18)
        if o["type"] == "relationship"
        and o["relationship_type"] == rtype
        and (revoked is None or bool(o.get("revoked")) == revoked)
        and (revoked is None or not o.get("x_mitre_deprecated"))
    }


def test_live_relationships_of_a_type(loaded_engine: Engine) -> None:
    with Session(loaded_engine) as s:
        rid = service.get_release(s).id or 0
        links = service.relationships(s, release_id=rid, types=["mitigates"])
    assert {tuple(link) for link in links} == _raw("mitigates")
    assert len(links) == len(_raw("mitigates"))


def test_revoked_relationships_only_when_asked(loaded_engine: Engine) -> None:
    with Session(loaded_engine) as s:
        rid = service.get_release(s).id or 0
        live = service.relationships(s, release_id=rid, types=["revoked-by"])
        every = service.relationships(
            s, release_id=rid, types=["revoked-by"], include_revoked=True, include_deprecated=True
        )
    assert {tuple(link) for link in every} == _raw("revoked-by", revoked=None)
    assert {tuple(link) for link in live} == _raw("revoked-by")


def test_relationships_from_sources_to_targets(loaded_engine: Engine) -> None:
    uses = sorted(_raw("uses"))
    source, target = uses[0][1], uses[0][2]
    with Session(loaded_engine) as s:
        rid = service.get_release(s).id or 0
        by_source = service.relationships(s, release_id=rid, types=["uses"], sources=[source])
        both = service.relationships(
            s, release_id=rid, types=["uses"], sources=[source], targets=[target]
        )
        none = service.relationships(s, release_id=rid, types=["uses"], sources=[])
    assert {tuple(link) for link in by_source} == {u for u in uses if u[1] == source}
    assert [tuple(link) for link in both] == [u for u in uses if u[1:3] == (source, target)]
    assert none == []

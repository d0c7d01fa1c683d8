"""Pure: what changed between two releases of one ATT&CK domain.

Input is each release's objects and the few relationships that carry structure (revoked-by,
subtechnique-of); output is a `ReleaseChanges`. No database, no network: `views.py` feeds it rows
from the tables, a test can feed it hand-made objects. The one release diff: the API's
`/releases/diff` (with each catalog's impact added by the refresh domain) and the layer domain's
diff layer both read it.

Nothing here knows a tactic name or a technique id of any release: tactics, their order,
sub-technique parents and replacements all come from the data, so a release that retires a tactic
or renumbers techniques diffs like any other.

Identity: techniques by ATT&CK id (what users map rules to); every other kind by STIX id, which
MITRE keeps stable across releases while some kinds (data components) carry no ATT&CK id at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.attack.models import (
    DescriptionChange,
    ObjectChanges,
    ObjectRef,
    ReleaseChanges,
    Renamed,
    RevokedTechnique,
    SetChange,
    SubtechniqueChange,
    SubtechniqueChangeKind,
    TacticChanges,
    TacticRef,
    TechniqueChanges,
)

# Kinds whose arrivals and departures the diff lists (techniques and tactics have their own).
OBJECT_KINDS = ("mitigation", "data_source", "data_component", "detection_strategy", "analytic")
VIEW_KINDS = ("technique", "tactic", "matrix", *OBJECT_KINDS)
MAX_CHAIN = 20  # revoked-by chains in real releases are 1-2 long; this only stops cycles


class ObjectLike(Protocol):
    """What the diff reads of an ATT&CK object; `AttackObject` rows satisfy it."""

    @property
    def stix_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def attack_id(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def revoked(self) -> bool: ...
    @property
    def deprecated(self) -> bool: ...
    @property
    def platforms(self) -> list[str]: ...
    @property
    def data(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ObjectState:
    """One object of one release, reduced to what a diff compares."""

    stix_id: str
    kind: str
    attack_id: str | None
    name: str
    description: str
    status: str  # active | revoked | deprecated
    platforms: tuple[str, ...] = ()
    tactics: tuple[str, ...] = ()  # techniques: kill-chain phase names, as ordered in the data
    is_subtechnique: bool = False
    parent: str | None = None  # techniques: ATT&CK id of the subtechnique-of target
    revoked_by: str | None = None  # techniques: ATT&CK id of the next revoked-by step
    shortname: str = ""  # tactics

    @property
    def live(self) -> bool:
        return self.status == "active"

    def ref(self) -> ObjectRef:
        return ObjectRef(id=self.attack_id, name=self.name)


@dataclass
class ReleaseView:
    """One release as the diff sees it: techniques by ATT&CK id, everything else by STIX id."""

    domain: str
    version: str
    detection_model: str
    techniques: dict[str, ObjectState] = field(default_factory=dict)
    tactics: dict[str, ObjectState] = field(default_factory=dict)
    tactic_order: list[str] = field(default_factory=list)  # live tactic shortnames, matrix order
    objects: dict[str, dict[str, ObjectState]] = field(default_factory=dict)  # kind → stix → obj

    def status(self, attack_id: str) -> str:
        info = self.techniques.get(attack_id)
        return info.status if info else "absent"

    def final(self, attack_id: str) -> tuple[str, list[str]]:
        """Follow revoked-by to its end; returns the last id and the chain walked."""
        chain = [attack_id]
        current = attack_id
        while (info := self.techniques.get(current)) and info.revoked_by and len(chain) < MAX_CHAIN:
            current = info.revoked_by
            if current in chain:
                break
            chain.append(current)
        return current, chain

    def replacement(self, attack_id: str) -> tuple[str | None, list[str]]:
        """The active technique a revoked id now means (None if the chain ends elsewhere)."""
        end, chain = self.final(attack_id)
        return (end if end != attack_id and self.status(end) == "active" else None), chain


def _status(o: ObjectLike) -> str:
    return "revoked" if o.revoked else ("deprecated" if o.deprecated else "active")


def build_view(
    *,
    domain: str,
    version: str,
    detection_model: str,
    objects: Iterable[ObjectLike],
    relationships: Iterable[tuple[str, str, str]],
) -> ReleaseView:
    """Objects of VIEW_KINDS plus (type, source STIX id, target STIX id) of live relationships."""
    objs = [o for o in objects if o.kind in VIEW_KINDS]
    attack_ids = {o.stix_id: o.attack_id for o in objs if o.kind == "technique" and o.attack_id}
    parent: dict[str, str] = {}
    revoked_by: dict[str, str] = {}
    for rtype, src, dst in relationships:
        if src in attack_ids and dst in attack_ids:
            if rtype == "subtechnique-of":
                parent[src] = attack_ids[dst]
            elif rtype == "revoked-by":
                revoked_by[src] = attack_ids[dst]
    view = ReleaseView(domain=domain, version=version, detection_model=detection_model)
    for o in objs:
        if o.kind == "technique" and o.attack_id:
            state = _technique_state(o, parent=parent, revoked_by=revoked_by)
            known = view.techniques.get(o.attack_id)
            if known is None or (not known.live and state.live):  # a live object wins an id
                view.techniques[o.attack_id] = state
        elif o.kind not in ("technique", "matrix"):
            state = _object_state(o)
            if o.kind == "tactic":
                view.tactics[o.stix_id] = state
            else:
                view.objects.setdefault(o.kind, {})[o.stix_id] = state
    matrices = [o for o in objs if o.kind == "matrix"]
    view.tactic_order = _tactic_order(matrices, view.tactics)
    return view


def _technique_state(
    o: ObjectLike, *, parent: dict[str, str], revoked_by: dict[str, str]
) -> ObjectState:
    return ObjectState(
        stix_id=o.stix_id,
        kind=o.kind,
        attack_id=o.attack_id,
        name=o.name,
        description=o.description,
        status=_status(o),
        platforms=tuple(o.platforms),
        tactics=tuple(
            str(p.get("phase_name", ""))
            for p in o.data.get("kill_chain_phases") or ()
            if str(p.get("kill_chain_name", "")).startswith("mitre")
        ),
        is_subtechnique=bool(o.data.get("is_subtechnique")),
        parent=parent.get(o.stix_id),
        revoked_by=revoked_by.get(o.stix_id),
    )


def _object_state(o: ObjectLike) -> ObjectState:
    return ObjectState(
        stix_id=o.stix_id,
        kind=o.kind,
        attack_id=o.attack_id,
        name=o.name,
        description=o.description,
        status=_status(o),
        shortname=str(o.data.get("shortname", "")),
    )


def _tactic_order(matrices: list[ObjectLike], tactics: dict[str, ObjectState]) -> list[str]:
    """Live tactics' shortnames in the matrices' own order, then any others by STIX id."""
    order: list[str] = []
    for m in sorted(matrices, key=lambda m: m.stix_id):
        order += [t for t in m.data.get("tactic_refs") or () if t in tactics and t not in order]
    order += sorted(t for t in tactics if t not in order)
    return [tactics[t].shortname for t in order if tactics[t].live]


# ---- the diff ----------------------------------------------------------------------------------


def diff_releases(
    before: ReleaseView, after: ReleaseView, *, with_text: bool = False
) -> ReleaseChanges:
    """The whole comparison of two releases (a catalog's impact is the refresh domain's part).

    Description texts stay out unless asked: they are most of a release's bytes and most
    callers only want to know which techniques to re-read.
    """
    techniques = _technique_changes(before, after, with_text=with_text)
    tactics = _tactic_changes(before, after)
    objects = {
        kind: _object_changes(before.objects.get(kind, {}), after.objects.get(kind, {}))
        for kind in OBJECT_KINDS
    }
    counts = {f"techniques_{k}": len(v) for k, v in techniques}
    counts["tactics_added"] = len(tactics.added)
    counts["tactics_retired"] = len(tactics.retired)
    for kind, ch in objects.items():
        counts[f"{kind}_added"] = len(ch.added)
        counts[f"{kind}_removed"] = len(ch.removed)
    return ReleaseChanges(
        domain=after.domain,
        from_version=before.version,
        to_version=after.version,
        detection_model_before=before.detection_model,
        detection_model_after=after.detection_model,
        counts=counts,
        techniques=techniques,
        tactics=tactics,
        objects=objects,
    )


def _technique_changes(
    before: ReleaseView, after: ReleaseView, *, with_text: bool
) -> TechniqueChanges:
    out = TechniqueChanges()
    for tid in sorted(after.techniques):
        new = after.techniques[tid]
        old = before.techniques.get(tid)
        was = old.status if old else "absent"
        if new.status == "active" and was != "active":
            back = old is not None and old.stix_id == new.stix_id  # not an id MITRE reused
            (out.reinstated if back else out.added).append(new.ref())
        elif new.status == "revoked" and was != "revoked":
            repl, chain = after.replacement(tid)
            end = after.techniques.get(repl or "")
            out.revoked.append(
                RevokedTechnique(
                    id=tid,
                    name=new.name,
                    revoked_by=new.revoked_by,
                    replacement=repl,
                    replacement_name=end.name if end else None,
                    chain=chain,
                )
            )
        elif new.status == "deprecated" and was != "deprecated":
            out.deprecated.append(new.ref())
        if old is None or not (old.live and new.live):
            continue
        if old.name != new.name:
            out.renamed.append(Renamed(id=tid, old_name=old.name, new_name=new.name))
        if set(old.tactics) != set(new.tactics):
            out.tactics_changed.append(_set_change(new, old.tactics, new.tactics))
        if set(old.platforms) != set(new.platforms):
            out.platforms_changed.append(_set_change(new, old.platforms, new.platforms))
        sub = _subtechnique_change(old, new)
        if sub is not None:
            out.subtechnique_changed.append(sub)
        if old.description != new.description:
            out.description_changed.append(
                DescriptionChange(
                    id=tid,
                    name=new.name,
                    old=old.description if with_text else None,
                    new=new.description if with_text else None,
                )
            )
    return out


def _set_change(state: ObjectState, old: Iterable[str], new: Iterable[str]) -> SetChange:
    old_l, new_l = list(old), list(new)
    return SetChange(
        id=state.attack_id,
        name=state.name,
        added=[x for x in new_l if x not in old_l],
        removed=[x for x in old_l if x not in new_l],
    )


def _subtechnique_change(old: ObjectState, new: ObjectState) -> SubtechniqueChange | None:
    if old.is_subtechnique == new.is_subtechnique and old.parent == new.parent:
        return None
    change: SubtechniqueChangeKind
    if not old.is_subtechnique and new.is_subtechnique:
        change = "became_subtechnique"
    elif old.is_subtechnique and not new.is_subtechnique:
        change = "ceased_subtechnique"
    else:
        change = "parent_changed"
    return SubtechniqueChange(
        id=new.attack_id,
        name=new.name,
        change=change,
        old_parent=old.parent,
        new_parent=new.parent,
    )


def _tactic_changes(before: ReleaseView, after: ReleaseView) -> TacticChanges:
    def ref(t: ObjectState) -> TacticRef:
        return TacticRef(id=t.attack_id, name=t.name, shortname=t.shortname)

    was = {k for k, t in before.tactics.items() if t.live}
    now = {k for k, t in after.tactics.items() if t.live}
    return TacticChanges(
        added=sorted((ref(after.tactics[k]) for k in now - was), key=lambda t: t.shortname),
        retired=sorted((ref(before.tactics[k]) for k in was - now), key=lambda t: t.shortname),
        order_before=list(before.tactic_order),
        order_after=list(after.tactic_order),
    )


def _object_changes(before: dict[str, ObjectState], after: dict[str, ObjectState]) -> ObjectChanges:
    was = {k for k, o in before.items() if o.live}
    now = {k for k, o in after.items() if o.live}

    def refs(keys: set[str], side: dict[str, ObjectState]) -> list[ObjectRef]:
        return sorted((side[k].ref() for k in keys), key=lambda r: (r.id or "", r.name))

    return ObjectChanges(added=refs(now - was, after), removed=refs(was - now, before))

"""What filter values a release understands: tactics, platforms, threat groups, in every form
kbmap itself prints them.

One place resolves them for every front end (API, CLI, pages, layers): a tactic by shortname,
display name or id (`lateral-movement`, `Lateral Movement`, `TA0008`); a platform by name in any
case; a group, software or campaign by id, name or alias (`G0016`, `APT29`, `Cozy Bear`). An
unknown value is an `InvalidInput` naming it and what is known, never an empty answer.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from app.attack.models import TacticRead
from app.core.errors import InvalidInput, Location

# a name several objects share goes to the first kind here (`Carbanak`: the group, not the malware)
THREAT_KINDS = ("group", "campaign", "software")
THREAT_LISTS = "GET /api/v1/groups, /api/v1/software or /api/v1/campaigns (?q=name)"


@dataclass(frozen=True)
class ThreatName:
    """One way to name a group, software or campaign; `rank` orders id < name < alias."""

    attack_id: str
    kind: str
    name: str
    rank: int


@dataclass
class Vocabulary:
    """The filter values of one release, and how each form a user may type maps onto them."""

    release: str  # "enterprise 18.1", for messages
    tactics: list[TacticRead]
    platforms: list[str]  # as the release spells them, sorted case-insensitively
    threat: dict[str, list[ThreatName]] = field(default_factory=dict)  # lower-cased key → names

    def tactic_shortnames(self, values: Iterable[str]) -> list[str]:
        """Each value as the tactic's shortname (what techniques and layers carry)."""
        forms: dict[str, str] = {}
        for t in self.tactics:
            for form in (t.shortname, t.name, t.id or "", t.shortname.replace("-", "_")):
                forms.setdefault(form.lower(), t.shortname)
        known = ", ".join(f"{t.shortname} ({t.id}, {t.name})" for t in self.tactics)
        return self._resolve(values, forms, "tactic", known)

    def platform_names(self, values: Iterable[str]) -> list[str]:
        """Each value as the release spells the platform (`windows` → `Windows`)."""
        forms = {p.lower(): p for p in self.platforms}
        return self._resolve(values, forms, "platform", ", ".join(self.platforms))

    def _resolve(
        self, values: Iterable[str], forms: dict[str, str], what: str, known: str
    ) -> list[str]:
        unknown = [v for v in values if v.strip().lower() not in forms]
        if unknown:
            raise InvalidInput(
                f"unknown {what} {', '.join(repr(v) for v in unknown)} in ATT&CK {self.release}; "
                f"known: {known}",
                Location(field=what),
            )
        return list(dict.fromkeys(forms[v.strip().lower()] for v in values))

    def threat_ids(self, values: Iterable[str]) -> list[str]:
        """Each group, software or campaign named by id, name or alias, as its ATT&CK id."""
        return list(dict.fromkeys(self._threat_id(v.strip()) for v in values))

    def _threat_id(self, value: str) -> str:
        names = self.threat.get(value.lower())
        if not names:
            raise InvalidInput(
                f"unknown group, software or campaign {value!r} in ATT&CK {self.release}"
                f"{self._close_to(value)}; list them with {THREAT_LISTS}",
                Location(field="groups"),
            )
        best = min((n.rank, THREAT_KINDS.index(n.kind)) for n in names)
        ids = sorted({n.attack_id for n in names if (n.rank, THREAT_KINDS.index(n.kind)) == best})
        if len(ids) > 1:
            both = ", ".join(f"{n.attack_id} ({n.name})" for n in names if n.attack_id in ids)
            raise InvalidInput(
                f"{value!r} names more than one {names[0].kind} ({both}); give the id",
                Location(field="groups"),
            )
        return ids[0]

    def _close_to(self, value: str) -> str:
        close = difflib.get_close_matches(value.lower(), self.threat, n=5, cutoff=0.75)
        hits = dict.fromkeys(
            f"{n.attack_id} ({n.name})" for key in close for n in self.threat[key][:1]
        )
        return f" (close: {', '.join(hits)})" if hits else ""


def threat_names(
    rows: Sequence[tuple[str, str, str, Sequence[str]]],
) -> dict[str, list[ThreatName]]:
    """(id, kind, name, aliases) rows → every lower-cased form → the objects it names."""
    out: dict[str, list[ThreatName]] = {}
    for attack_id, kind, name, aliases in rows:
        for rank, forms in enumerate(([attack_id], [name], aliases)):
            for form in forms:
                names = out.setdefault(form.strip().lower(), [])
                if all(n.attack_id != attack_id for n in names):
                    names.append(ThreatName(attack_id, kind, name, rank))
    return out

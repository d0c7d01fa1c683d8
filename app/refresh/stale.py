"""Pure: which rule mappings a new release makes stale (the catalog side of a release diff).

The release comparison itself is the attack domain's (`attack_service.diff_releases`); this module
reads the same two release views to judge each stored mapping. No database, no network:
`impact.py` feeds it rows from the tables, a test can feed it hand-made rows and views.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.refresh.models import StaleMapping, StaleStatus

if TYPE_CHECKING:  # the type only: this module never touches the attack service's queries
    from app.attack.service import ReleaseView


@dataclass(frozen=True)
class MappingRow:
    """One stored rule mapping: the written text, its folded id, the id it resolved to."""

    rule_id: str
    rule_name: str
    written: str
    written_id: str | None  # `written` folded to a technique id (None when it has none)
    technique: str | None


def stale_mappings(
    rows: Iterable[MappingRow], before: ReleaseView, after: ReleaseView
) -> list[StaleMapping]:
    """Mappings whose written or resolved id is revoked or deprecated in `after`, or known in
    `before` and gone from `after`; with the revoked-by replacement where one is active.

    The written id is checked first: a catalog that still says T1574.002 is stale even when the
    import already resolved it to T1574.001 (`already_resolved` tells those apart).
    """
    out: list[StaleMapping] = []
    for row in rows:
        for tid in dict.fromkeys(x for x in (row.written_id, row.technique) if x):
            status: StaleStatus
            now = after.status(tid)
            if now in ("revoked", "deprecated"):
                status = "revoked" if now == "revoked" else "deprecated"
            elif now == "absent" and before.status(tid) != "absent":
                status = "removed"
            else:
                continue
            suggested, chain = after.replacement(tid) if status == "revoked" else (None, [tid])
            out.append(
                StaleMapping(
                    rule_id=row.rule_id,
                    rule_name=row.rule_name,
                    written=row.written,
                    technique=row.technique,
                    stale_id=tid,
                    status=status,
                    suggested=suggested,
                    chain=chain,
                    changed_in_this_diff=before.status(tid) == "active",
                    already_resolved=suggested is not None and row.technique == suggested,
                )
            )
            break
    return out

"""Pure: technique ↔ data component links for both ATT&CK detection models.

≤ 17: a data component `detects` a technique. 18+: a detection strategy `detects` a technique and
lists analytics, whose log-source references name data components. Both reduce to one row shape,
so coverage by telemetry works on any release.
"""

from __future__ import annotations

from typing import Any

from app.attack.stix import ParsedObject, ParsedRelationship

# (technique_ref, data_component_ref, detection_strategy_ref, analytic_ref)
LinkRow = tuple[str, str, str | None, str | None]


def derive_links(
    objects: list[ParsedObject], relationships: list[ParsedRelationship]
) -> tuple[list[LinkRow], str]:
    """Return the links and the detection model the release uses."""
    kind_of: dict[str, str] = {}
    data_of: dict[str, dict[str, Any]] = {}
    for row in objects:
        kind_of[row[0]] = row[1]
        if row[1] in ("detection_strategy", "analytic"):
            data_of[row[0]] = row[11]
    links: list[LinkRow] = []
    seen: set[LinkRow] = set()
    strategies = 0
    for _sid, rtype, src, dst, _desc, revoked, _dep in relationships:
        if rtype != "detects" or revoked:
            continue
        source_kind = kind_of.get(src)
        if source_kind == "data_component":
            link: LinkRow = (dst, src, None, None)
            if link not in seen:
                seen.add(link)
                links.append(link)
        elif source_kind == "detection_strategy":
            strategies += 1
            for analytic in data_of[src].get("analytic_refs") or ():
                for ref in (data_of.get(analytic) or {}).get("log_source_references") or ():
                    dc = ref.get("x_mitre_data_component_ref")
                    if dc and kind_of.get(dc) == "data_component":
                        link = (dst, dc, src, analytic)
                        if link not in seen:
                            seen.add(link)
                            links.append(link)
    model = "detection-strategy" if strategies else "data-component"
    return links, model

"""The attack domain's facade: what other domains call as `attack_service.X`.

The work lives in modules split by question: `releases` (which release), `objects` (one object or
a list of them), `index` (a release's in-memory index and vocabulary), `relationships` (every read
of the relationship table) and `release_view` (a release as the diff reads it, and the diff).
Everything here speaks ATT&CK (technique, mitigation, group); STIX ids are only join keys.
"""

from __future__ import annotations

from app.attack.changes import ReleaseView
from app.attack.index import (
    TechniqueIndex,
    TechniqueInfo,
    analytics_by_technique,
    list_tactics,
    mitigations_for,
    technique_index,
    vocabulary,
)
from app.attack.object_links import (
    DetectionLink,
    Neighbour,
    citation_urls,
    components_of_source,
    detection_links,
    find_page_object,
    neighbours,
)
from app.attack.objects import (
    KIND_LABEL,
    briefs,
    find_object,
    get_object,
    get_object_read,
    list_objects,
    list_techniques,
    object_read,
    objects_by_stix_id,
    technique_data_components,
)
from app.attack.relationships import (
    Related,
    RelationshipLink,
    attributed_to,
    related,
    relationships,
    relationships_of,
)
from app.attack.release_rows import (
    LogSourceComponent,
    analytic_ids,
    data_component_links,
    live_objects,
    log_source_components,
    text_objects,
)
from app.attack.release_view import diff_releases, release_view
from app.attack.releases import (
    RELEASES_STATE_SQL,
    find_release,
    get_release,
    list_releases,
    release_key,
    releases_for_lookup,
)
from app.attack.rows import BRIEF_COLUMNS, Brief, ObjectRow

__all__ = [
    "BRIEF_COLUMNS",
    "KIND_LABEL",
    "RELEASES_STATE_SQL",
    "Brief",
    "DetectionLink",
    "LogSourceComponent",
    "Neighbour",
    "ObjectRow",
    "Related",
    "RelationshipLink",
    "ReleaseView",
    "TechniqueIndex",
    "TechniqueInfo",
    "analytic_ids",
    "analytics_by_technique",
    "attributed_to",
    "briefs",
    "citation_urls",
    "components_of_source",
    "data_component_links",
    "detection_links",
    "diff_releases",
    "find_object",
    "find_page_object",
    "find_release",
    "get_object",
    "get_object_read",
    "get_release",
    "list_objects",
    "list_releases",
    "list_tactics",
    "list_techniques",
    "live_objects",
    "log_source_components",
    "mitigations_for",
    "neighbours",
    "object_read",
    "objects_by_stix_id",
    "related",
    "relationships",
    "relationships_of",
    "release_key",
    "release_view",
    "releases_for_lookup",
    "technique_data_components",
    "technique_index",
    "text_objects",
    "vocabulary",
]

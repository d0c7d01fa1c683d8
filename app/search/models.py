"""Search API shapes, and the kinds it knows with the kbmap page folder of each (plain data: the
search domain sits below the web pages, so the page path scheme is spelt here as data)."""

from __future__ import annotations

from app.core.api_model import ApiModel

# Search kind (as the API and the pages name it) → ATT&CK's stored object kind
ATTACK_KINDS = {
    "technique": "technique",
    "tactic": "tactic",
    "group": "group",
    "software": "software",
    "campaign": "campaign",
    "mitigation": "mitigation",
    "data-source": "data_source",
    "data-component": "data_component",
    "detection-strategy": "detection_strategy",
    "analytic": "analytic",
    "asset": "asset",
}
KINDS = (*ATTACK_KINDS, "rule", "catalog")  # the order results are grouped in
# Search kind → kbmap's page folder (tactics and assets have no kbmap page: no href)
PAGE_FOLDER = {
    "technique": "techniques",
    "group": "groups",
    "software": "software",
    "campaign": "campaigns",
    "mitigation": "mitigations",
    "data-source": "data-sources",
    "data-component": "data-components",
    "detection-strategy": "detection-strategies",
    "analytic": "analytics",
    "catalog": "catalogs",
}
MATCHED = ("id", "name", "alias", "title", "parent", "description")


class SearchHit(ApiModel):
    """One thing found: what it is, where the query matched it, its score and its kbmap page."""

    kind: str
    id: str  # ATT&CK id (a STIX id where it has none), rule id, or catalog name
    name: str
    matched: str  # one of MATCHED: the best field the query was found in
    score: int
    live: bool = True  # False: revoked or deprecated in this release
    catalog: str | None = None  # a rule's catalog
    href: str | None = None  # kbmap's page (None: tactics and assets have none)


class KindResults(ApiModel):
    """The hits of one kind, best first: `total` found, `hits` `limit` of them from `offset`."""

    kind: str
    total: int
    offset: int = 0
    hits: list[SearchHit]


class SearchResults(ApiModel):
    """A search's answer: the release it looked in, the catalogs, and the hits grouped by kind
    (kinds without a hit left out)."""

    query: str
    domain: str
    version: str
    kinds: list[str]  # the kinds searched
    total: int
    groups: list[KindResults]

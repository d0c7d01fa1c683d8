"""The release vocabulary (the one resolver of filter values) on both backends and every domain,
checked against the raw bundles."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from app.attack import service
from app.core.errors import InvalidInput
from tests import rawdata

BUNDLES = {
    "enterprise": "enterprise-attack-18.1.json.gz",
    "mobile": "mobile-attack-18.1.json.gz",
    "ics": "ics-attack-18.1.json.gz",
}
THREAT_TYPES = ("intrusion-set", "malware", "tool", "campaign")


@pytest.mark.parametrize("domain", BUNDLES)
def test_every_form_of_every_tactic_platform_and_group(loaded_engine: Engine, domain: str) -> None:
    raw = rawdata.objects(BUNDLES[domain])
    tactics = [o for o in raw if o["type"] == "x-mitre-tactic" and rawdata.active(o)]
    platforms = {
        p
        for o in raw
        if o["type"] == "attack-pattern" and rawdata.active(o)
        for p in o.get("x_mitre_platforms", [])
    }
    with Session(loaded_engine) as s:
        words = service.vocabulary(s, release=service.get_release(s, domain=domain))
    for t in tactics:
        forms = [t["x_mitre_shortname"], t["name"], t["name"].lower(), rawdata.ext_id(t) or ""]
        assert words.tactic_shortnames(forms) == [t["x_mitre_shortname"]]
    assert set(words.platforms) == platforms
    assert words.platform_names([p.upper() for p in sorted(platforms)]) == sorted(platforms)
    for o in raw:
        if o["type"] in THREAT_TYPES and rawdata.active(o):
            aid = rawdata.ext_id(o) or ""
            assert words.threat_ids([aid, aid.lower()]) == [aid]
            if o["type"] == "intrusion-set":  # a group's own name beats every alias and kind
                assert words.threat_ids([o["name"].upper()]) == [aid]
    with pytest.raises(InvalidInput, match="unknown tactic 'TA9999'"):
        words.tactic_shortnames(["TA9999"])
    with pytest.raises(InvalidInput, match="unknown platform 'Plan 9'"):
        words.platform_names(["Plan 9"])

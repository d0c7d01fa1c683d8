"""Rule platforms → ATT&CK platforms: the shipped table reads, and maps as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.catalog.platforms import load_platform_map
from app.core.errors import InvalidInput

pytestmark = pytest.mark.unit
TABLE = Path(__file__).resolve().parents[2] / "kb" / "mappings" / "rule-platforms.yaml"
KNOWN = frozenset({"windows", "linux", "iaas", "identity provider", "saas"})


def test_names_products_and_unknowns() -> None:
    table = load_platform_map(TABLE)
    assert table.attack_platforms(["Windows"], KNOWN) == {"windows"}
    assert table.attack_platforms(["AWS", "Okta"], KNOWN) == {"iaas", "identity provider"}
    assert table.attack_platforms(["opencanary"], KNOWN) == frozenset()  # platform-agnostic
    assert table.attack_platforms([], KNOWN) == frozenset()


def test_a_broken_table_names_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("platforms:\n  aws: IaaS\n")
    with pytest.raises(InvalidInput) as err:
        load_platform_map(bad)
    assert err.value.location is not None and err.value.location.field == "platforms.aws"

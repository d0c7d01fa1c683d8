"""SplunkImporter on hand-built security_content detection files."""

from __future__ import annotations

from pathlib import Path

from app.catalog.base import ParsedCatalog
from app.catalog.formats.splunk import SplunkImporter
from app.catalog.source import open_source, source_from_bytes
from app.core.config import Limits

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "catalogs"
SPLUNK = FIXTURES / "splunk"
LIMITS = Limits()
IMPORTER = SplunkImporter()

CRADLE = "detections/endpoint/windows_powershell_encoded_download_cradle.yml"
LSASS = "detections/endpoint/windows_lsass_access_by_unsigned_process.yml"
TEMP_SERVICE = "detections/deprecated/windows_service_created_in_temp_folder.yml"

DETECTION = """name: {name}
id: {rule_id}
version: 1
date: '2024-01-01'
author: Tester
status: production
type: {type}
description: A detection for tests.
data_source:
- Sysmon EventID 1
search: '| tstats count from datamodel=Endpoint.Processes by Processes.dest'
tags:
  analytic_story:
  - Tests
  asset_type: Endpoint
  mitre_attack_id:
  - T1059
  product:
  - Splunk Enterprise
  security_domain: endpoint
"""

SIGMA = """title: Whoami
id: 1b1c2d3e-0000-4000-8000-000000000001
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\\\whoami.exe'
    condition: selection
tags:
    - attack.t1033
"""


def detection(name: str = "Test", rule_id: str = "id-1", rtype: str = "TTP") -> str:
    return DETECTION.format(name=name, rule_id=rule_id, type=rtype)


def parse_tree(files: dict[str, str], root: Path) -> ParsedCatalog:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return IMPORTER.parse(open_source(root, LIMITS), LIMITS)


def located(
    cat: ParsedCatalog, severity: str = "error"
) -> list[tuple[str | None, int | None, str | None, str]]:
    return [
        (i.location.file, i.location.line, i.location.field, i.message)
        for i in cat.issues
        if i.severity == severity and i.location
    ]


def test_security_content_tree() -> None:
    cat = IMPORTER.parse(open_source(SPLUNK, LIMITS), LIMITS)
    assert cat.issues == []
    assert (cat.format_id, cat.vendor, cat.files_read) == ("splunk", "Splunk", 3)
    rules = {r.path: r for r in cat.rules}
    assert sorted(rules) == sorted([CRADLE, LSASS, TEMP_SERVICE])

    cradle = rules[CRADLE]
    assert cradle.rule_id == "3f6b2c1e-8a4d-4e7b-9c2f-5d1a0b8e7f63"
    assert cradle.title == "Windows PowerShell Encoded Download Cradle"
    assert cradle.name == "windows_powershell_encoded_download_cradle"
    assert cradle.package == "detections/endpoint"
    assert cradle.techniques == ["T1059.001", "T1105"]
    assert cradle.tactics == [] and cradle.platforms == []  # Splunk states neither
    assert cradle.log_sources == [
        {"data_source": "Sysmon EventID 1"},
        {"data_source": "Windows Event Log Security 4688"},
    ]
    assert (cradle.severity, cradle.extra["risk_score"]) == ("high", 64)  # highest RBA score
    assert (cradle.status, cradle.enabled) == ("production", True)
    assert cradle.references == ["https://attack.mitre.org/techniques/T1059/001/"]
    assert cradle.extra["analytic_story"] == ["Malicious PowerShell", "Ingress Tool Transfer"]
    assert cradle.extra["type"] == "TTP"
    assert cradle.line == 2

    lsass = rules[LSASS]
    assert lsass.techniques == ["T1003.001"]
    assert lsass.log_sources == [{"data_source": "Sysmon EventID 10"}]
    # the older tags.risk_score wins over the type (Anomaly alone would read "medium")
    assert (lsass.severity, lsass.extra["risk_score"]) == ("high", 72)

    temp = rules[TEMP_SERVICE]
    assert temp.techniques == ["T1543.003"]
    assert (temp.status, temp.enabled) == ("deprecated", False)
    assert temp.severity == "low" and "risk_score" not in temp.extra  # from type Hunting


def test_severity_from_type_and_score_bands(tmp_path: Path) -> None:
    files = {
        f"detections/{t.lower()}.yml": detection(t, f"id-{t}", t)
        for t in ("TTP", "Anomaly", "Hunting", "Correlation", "Baseline")
    }
    scored = detection("Scored", "id-scored", "Hunting") + (
        "rba:\n  message: m\n  risk_objects:\n  - field: dest\n    type: system\n    score: 15\n"
    )
    files["detections/scored.yml"] = scored
    cat = parse_tree(files, tmp_path)
    assert {r.title: r.severity for r in cat.rules} == {
        "TTP": "high",
        "Anomaly": "medium",
        "Hunting": "low",
        "Correlation": "high",
        "Baseline": None,
        "Scored": "informational",
    }


def test_only_detections_are_read_when_the_folder_exists(tmp_path: Path) -> None:
    files = {
        "detections/endpoint/a.yml": detection("A", "id-a"),
        "stories/malicious_powershell.yml": "name: Malicious PowerShell\nid: s-1\nnarrative: x\n",
        "macros/process_powershell.yml": "definition: (Processes.process_name=powershell.exe)\n",
    }
    cat = parse_tree(files, tmp_path)
    assert [r.rule_id for r in cat.rules] == ["id-a"]
    assert cat.issues == [] and cat.files_read == 1


def test_without_detections_folder_other_yaml_is_skipped_with_a_warning(tmp_path: Path) -> None:
    files = {"mine/a.yml": detection("A", "id-a"), "mine/notes.yml": "name: notes\n"}
    cat = parse_tree(files, tmp_path)
    assert [r.rule_id for r in cat.rules] == ["id-a"]
    assert located(cat, "warning") == [
        ("mine/notes.yml", None, None, "no search: not a Splunk detection, not read")
    ]


def test_problems_are_located(tmp_path: Path) -> None:
    no_id = detection("No Id").replace("id: id-1\n", "")
    bad_tags = (
        detection("Bad Tags", "id-bad")
        .replace("  - T1059\n", "")
        .replace("  mitre_attack_id:\n", "  mitre_attack_id: {T1059: yes}\n")
    )
    files = {
        "detections/a.yml": detection("A", "dup"),
        "detections/b.yml": detection("B", "dup"),
        "detections/c.yml": no_id,
        "detections/d.yml": "name: Broken\nid: x\nsearch: [unclosed\n",
        "detections/e.yml": bad_tags,
    }
    cat = parse_tree(files, tmp_path)
    problems = located(cat)
    assert problems[0] == ("detections/c.yml", None, "id", "missing required field id")
    assert problems[1][0] == "detections/d.yml" and problems[1][3].startswith("invalid YAML")
    assert problems[1][1] is not None and problems[1][1] >= 3
    assert problems[2:] == [
        (
            "detections/e.yml",
            16,
            "tags.mitre_attack_id",
            "tags.mitre_attack_id must be a list of strings",
        ),
        ("detections/b.yml", 2, "id", "duplicate rule id 'dup' (first at detections/a.yml line 2)"),
    ]
    assert sorted(r.rule_id for r in cat.rules) == ["dup", "dup", "id-bad"]


def test_single_file() -> None:
    cat = IMPORTER.parse(open_source(SPLUNK / LSASS, LIMITS), LIMITS)
    [rule] = cat.rules
    assert (rule.rule_id, rule.path, rule.package) == (
        "9d0c4e7a-2b61-4f3e-8a5d-c7e1f0b2a348",
        "windows_lsass_access_by_unsigned_process.yml",
        None,
    )


def test_sniff(tmp_path: Path) -> None:
    assert IMPORTER.sniff(open_source(SPLUNK, LIMITS))
    assert IMPORTER.sniff(open_source(SPLUNK / CRADLE, LIMITS))
    assert not IMPORTER.sniff(source_from_bytes("whoami.yml", SIGMA.encode(), LIMITS))
    assert not IMPORTER.sniff(open_source(FIXTURES / "elastic", LIMITS))
    assert not IMPORTER.sniff(open_source(FIXTURES / "canonical" / "example-siem.yaml", LIMITS))
    sigma_tree = tmp_path / "sigma"
    (sigma_tree / "detections").mkdir(parents=True)
    (sigma_tree / "detections" / "whoami.yml").write_text(SIGMA, encoding="utf-8")
    assert not IMPORTER.sniff(open_source(sigma_tree, LIMITS))
    xp = tmp_path / "xp" / "rule"
    xp.mkdir(parents=True)
    (xp / "metainfo.yaml").write_text(detection(), encoding="utf-8")
    (xp / "rule.co").write_text("rule X: e\n", encoding="utf-8")
    assert not IMPORTER.sniff(open_source(tmp_path / "xp", LIMITS))

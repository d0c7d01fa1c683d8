"""SentinelImporter on real Azure-Sentinel rule files (tests/fixtures/catalogs/sentinel, copied
unchanged) and on rules built here; expected values are read from the raw YAML with PyYAML."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import Session

from app.catalog import registry
from app.catalog import service as catalog_service
from app.catalog.base import ParsedCatalog, clean_rules
from app.catalog.formats.sentinel import SentinelImporter
from app.catalog.source import open_source, source_from_bytes
from app.catalog.telemetry import data_components_for, load_log_source_map, unlinked_values
from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.core.errors import TooLarge

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "catalogs"
SENTINEL = FIXTURES / "sentinel"
TABLES = Path(__file__).resolve().parents[3] / "kb" / "mappings" / "log-sources.yaml"
LIMITS = Limits()
IMPORTER = SentinelImporter()
POINTER = "Detections/DnsEvents/DNS_Miners.yaml"
RETIRED = "Solutions/Microsoft 365/Analytic Rules/ForestBlizzardCredHarvesting.yaml"
NONDC = "Solutions/Windows Security Events/Analytic Rules/NonDCActiveDirectoryReplication.yaml"

RULE = """id: {rule_id}
name: {name}
description: |
  'A rule built for tests.'
severity: {severity}
status: Available
requiredDataConnectors:
  - connectorId: SecurityEvents
    dataTypes:
      - SecurityEvent
  - connectorId: MicrosoftThreatProtection
    dataTypes:
      - DeviceProcessEvents
      - Custom_Table_CL
queryFrequency: 5h
queryPeriod: 5h
triggerOperator: gt
triggerThreshold: 0
tactics:
{tactics}
relevantTechniques:
  - T1059.001
  - T1078
query: |
  SecurityEvent
  | where EventID in (4688, 4624) or EventID != 4625
  | where not(EventID !in (4720))
eventGroupingSettings:
  aggregationKind: AlertPerResult
customDetails:
  CommandLine: CommandLine
alertDetailsOverride:
  alertDisplayNameFormat: 'Process {{{{NewProcessName}}}}'
  alertSeverityColumnName: Severity
metadata:
  source:
    kind: Community
  author:
    name: Tester
  support:
    tier: Community
  categories:
    domains: [ "Security - Threat Protection" ]
tags:
  - Solorigate
entityMappings:
  - entityType: Host
    fieldMappings:
      - identifier: FullName
        columnName: Computer
version: 1.0.3
kind: Scheduled
"""


def rule(
    rule_id: str = "6f3b1e0c-0000-4000-8000-000000000001",
    name: str = "Built rule",
    severity: str = "Medium",
    tactics: tuple[str, ...] = ("Execution", "CommandAndControl"),
) -> str:
    listed = "\n".join(f"  - {t}" for t in tactics)
    return RULE.format(rule_id=rule_id, name=name, severity=severity, tactics=listed)


def parse_tree(root: Path, files: dict[str, str | bytes]) -> ParsedCatalog:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        data = text.encode() if isinstance(text, str) else text
        (root / rel).write_bytes(data)
    return IMPORTER.parse(open_source(root, LIMITS), LIMITS)


def parse_one(name: str, data: bytes) -> ParsedCatalog:
    return IMPORTER.parse(source_from_bytes(name, data, LIMITS), LIMITS)


def messages(cat: ParsedCatalog, severity: str) -> list[str]:
    return [i.message for i in cat.issues if i.severity == severity]


def kebab(camel: str) -> str:
    """ATT&CK's short name of a CamelCase tactic, by another route than the importer's table."""
    return re.sub(r"(?<!^)(?=[A-Z])", "-", camel).lower()


def raw_rules() -> dict[str, dict[str, Any]]:
    """Every fixture file as PyYAML reads it, by path."""
    return {
        p.relative_to(SENTINEL).as_posix(): yaml.safe_load(p.read_text(encoding="utf-8"))
        for p in sorted(SENTINEL.rglob("*.yaml"))
    }


# ---------------------------------------------------------------------------------------------
# real files


def test_real_files_read_as_the_raw_yaml_says() -> None:
    cat = IMPORTER.parse(open_source(SENTINEL, LIMITS), LIMITS)
    raw = raw_rules()
    assert (cat.format_id, cat.vendor, cat.product) == (
        "sentinel",
        "Microsoft",
        "Microsoft Sentinel",
    )
    assert cat.files_read == len(raw) == 8
    assert messages(cat, "error") == []
    rules = {r.path: r for r in cat.rules}
    live = {p: d for p, d in raw.items() if "query" in d}
    assert set(rules) == set(live) | {RETIRED}  # the pointer is not a rule
    for path, doc in live.items():
        r = rules[path]
        assert (r.rule_id, r.title, r.body) == (doc["id"], doc["name"], doc["query"])
        assert r.severity == doc["severity"].lower()
        assert r.techniques == doc.get("relevantTechniques", [])
        assert r.tactics == [kebab(t) for t in doc["tactics"]]
        assert (r.extra["kind"], r.extra["version"]) == (doc["kind"], doc["version"])
        assert r.enabled is True and r.status == doc.get("status")
        pairs = [
            {"connector": c["connectorId"], "data_type": t}
            for c in doc["requiredDataConnectors"]
            for t in c["dataTypes"]
        ]
        assert [e for e in r.log_sources if "event_id" not in e] == [
            p for i, p in enumerate(pairs) if p not in pairs[:i]
        ]
        assert r.extra["entity_types"] == [e["entityType"] for e in doc["entityMappings"]]
        for key in ("queryFrequency", "queryPeriod", "triggerOperator", "triggerThreshold"):
            assert r.extra.get(key) == doc.get(key)
    kinds = {r.extra.get("kind") for r in cat.rules}
    assert kinds == {"Scheduled", "NRT", None}  # None: the retired rule says no kind


def test_sub_technique_tactics_only_and_nested_folder() -> None:
    cat = IMPORTER.parse(open_source(SENTINEL, LIMITS), LIMITS)
    by_id = {r.rule_id: r for r in cat.rules}
    pim = by_id["14f6da04-2f96-44ee-9210-9ccc1be6401e"]
    assert (pim.techniques, pim.tactics, pim.extra["kind"]) == (
        ["T1078.004"],
        ["privilege-escalation"],
        "NRT",
    )
    ti = by_id["36a9c9e5-3dc1-4ed9-afaa-1d13617bfc2b"]  # tactics, no relevantTechniques
    assert (ti.techniques, ti.tactics) == ([], ["impact"])
    wevtutil = by_id["515d0bba-b297-4f83-8280-20ff7f27ecb1"]
    assert wevtutil.extra["solution"] == "Microsoft Defender XDR"
    assert wevtutil.package == "Solutions/Microsoft Defender XDR/Analytic Rules/Ransomware"
    aws = by_id["0ee2aafb-4500-4e36-bcb1-e90eec2f0b9b"]  # Detections/, no final newline
    assert aws.tactics == [
        "defense-evasion",
        "privilege-escalation",
        "persistence",
        "initial-access",
    ]
    assert "solution" not in aws.extra


def test_retired_rule_is_kept_disabled_and_the_pointer_is_named() -> None:
    cat = IMPORTER.parse(open_source(SENTINEL, LIMITS), LIMITS)
    raw = raw_rules()[RETIRED]
    [retired] = [r for r in cat.rules if r.path == RETIRED]
    assert (retired.rule_id, retired.title) == (raw["id"], raw["name"])
    assert (retired.enabled, retired.status, retired.body) == (False, "deprecated", None)
    assert retired.techniques == [] and retired.log_sources == []
    [note] = messages(cat, "warning")
    assert note.startswith("1 files are pointers left by the content migration")
    assert POINTER in note


def test_security_event_ids_in_the_query_become_entries() -> None:
    cat = IMPORTER.parse(open_source(SENTINEL / NONDC, LIMITS), LIMITS)
    [r] = cat.rules
    query = yaml.safe_load((SENTINEL / NONDC).read_text())["query"]
    ids = re.findall(r"EventID == (\d+)", query)
    assert ids == ["4662", "4624"]
    assert [e["event_id"] for e in r.log_sources if "event_id" in e] == ids


def test_tar_gz_checkout_reads_only_rule_folders() -> None:
    buf = io.BytesIO()
    others = {
        "Solutions/Microsoft Entra ID/Hunting Queries/h.yaml": "id: h\nname: h\nquery: SigninLogs\n"
        "requiredDataConnectors: []\nrelevantTechniques: [T1078]\n",
        "Solutions/Microsoft Entra ID/Parsers/p.yaml": "FunctionName: p\nFunctionQuery: x\n",
        "Solutions/Microsoft Entra ID/Workbooks/w.yaml": "name: w\n",
        "Solutions/Microsoft Entra ID/Data/Solution_AAD.yaml": "Name: x\n",
        "Hunting Queries/SigninLogs/q.yaml": "id: q\nquery: SigninLogs\nkind: x\n",
        "Playbooks/p/azuredeploy.yaml": "a: 1\n",
    }
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        files = [
            (p.relative_to(SENTINEL).as_posix(), p.read_bytes())
            for p in SENTINEL.rglob("*")
            if p.is_file()
        ]
        files += [(k, v.encode()) for k, v in others.items()]
        for rel, data in files:
            if rel.endswith("README.md") or not data:
                continue
            info = tarfile.TarInfo(f"Azure-Sentinel-master/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = source_from_bytes("Azure-Sentinel-master.tar.gz", buf.getvalue(), LIMITS)
    assert registry.detect(source).format_id == "sentinel"
    cat = IMPORTER.parse(source, LIMITS)
    folder = IMPORTER.parse(open_source(SENTINEL, LIMITS), LIMITS)
    assert sorted(r.rule_id for r in cat.rules) == sorted(r.rule_id for r in folder.rules)
    assert cat.files_read == 8
    [skipped] = [m for m in messages(cat, "warning") if "not analytic rules" in m]
    assert skipped.startswith(f"{len(others)} YAML files outside Solutions/*/Analytic Rules/")
    assert "Hunting Queries 2" in skipped and "Parsers 1" in skipped


# ---------------------------------------------------------------------------------------------
# built rules


def test_built_rule_fields_and_extras(tmp_path: Path) -> None:
    cat = parse_one("built.yaml", rule().encode())
    [r] = cat.rules
    doc = yaml.safe_load(rule())
    assert r.tactics == ["execution", "command-and-control"]
    assert r.techniques == ["T1059.001", "T1078"]
    # `in (...)` ids are read; `!=` and `!in` are not what the query selects
    assert [e["event_id"] for e in r.log_sources if "event_id" in e] == ["4688", "4624"]
    for key in ("eventGroupingSettings", "customDetails", "alertDetailsOverride", "metadata"):
        assert r.extra[key] == doc[key]
    assert r.extra["tags"] == ["Solorigate"] and r.extra["sentinel_status"] == "Available"
    assert r.extra["required_data_connectors"] == doc["requiredDataConnectors"]
    assert cat.issues == []


@pytest.mark.parametrize(
    ("tactics", "expected", "warned"),
    [
        (
            ("InhibitResponseFunction", "ImpairProcessControl"),
            ["inhibit-response-function", "impair-process-control"],
            [],
        ),
        (("PreAttack", "Discovery"), ["PreAttack", "discovery"], ["PreAttack"]),
        # a tactic a newer release has: named as ATT&CK would, the release judges it
        (("Stealth",), ["stealth"], []),
        (("Tactic1",), ["Tactic1"], ["'Tactic1'"]),
    ],
)
def test_tactics_known_ics_pre_attack_and_unknown(
    tactics: tuple[str, ...], expected: list[str], warned: list[str]
) -> None:
    cat = parse_one("t.yaml", rule(tactics=tactics).encode())
    assert cat.rules[0].tactics == expected
    notes = messages(cat, "warning")
    assert len(notes) == len(warned)
    for note, word in zip(notes, warned, strict=True):
        assert word in note


@pytest.mark.parametrize(
    ("written", "expected"),
    [("Informational", "informational"), ("Low", "low"), ("High", "high"), ("Severe", None)],
)
def test_severity(written: str, expected: str | None) -> None:
    cat = parse_one("s.yaml", rule(severity=written).encode())
    assert cat.rules[0].severity == expected
    assert bool(messages(cat, "warning")) is (expected is None)


@pytest.mark.parametrize(
    "name", ["[Deprecated] Old rule", "TI Map URL Entity to OfficeActivity Data [Deprecated]"]
)
def test_deprecated_name_marks_the_rule_disabled(name: str) -> None:
    [r] = parse_one("d.yaml", rule(name=f'"{name}"').encode()).rules
    assert (r.enabled, r.status, r.title) == (False, "deprecated", name)


def test_a_rule_kind_without_query_is_a_live_rule() -> None:
    fusion = "id: f-1\nname: Advanced Multistage Attack Detection\nseverity: High\nkind: Fusion\n"
    [r] = parse_one("fusion.yaml", fusion.encode()).rules
    assert (r.enabled, r.body, r.extra["kind"]) == (True, None, "Fusion")


def test_duplicate_id_keeps_the_solutions_copy_with_a_warning(tmp_path: Path) -> None:
    dup = "aaaaaaaa-0000-4000-8000-000000000001"
    cat = parse_tree(
        tmp_path,
        {
            "Detections/SecurityEvent/a.yaml": rule(dup, "Old copy"),
            "Solutions/Windows/Analytic Rules/a.yaml": rule(dup, "Maintained copy"),
        },
    )
    assert [r.title for r in cat.rules] == ["Maintained copy"]
    [note] = messages(cat, "warning")
    assert "Solutions/Windows/Analytic Rules/a.yaml" in note
    assert [i.location.file for i in cat.issues if i.location] == [
        "Detections/SecurityEvent/a.yaml"
    ]


def test_file_quirks_bom_crlf_tabs_utf16(tmp_path: Path) -> None:
    text = rule().replace("'A rule built for tests.'", "'tab\there'")
    variants = {
        "bom.yaml": b"\xef\xbb\xbf" + text.encode(),
        "crlf.yaml": text.replace("\n", "\r\n").encode(),
        "utf16.yaml": text.encode("utf-16"),
    }
    for name, data in variants.items():
        cat = parse_one(name, data)
        assert messages(cat, "error") == [], name
        [r] = cat.rules
        assert r.rule_id == "6f3b1e0c-0000-4000-8000-000000000001", name
        assert "tab\there" in r.description and r.body and r.body.startswith("SecurityEvent")


def test_problems_are_errors_with_locations(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    files: dict[str, str | bytes] = {
        "Detections/x/no_id.yaml": rule().replace("id: 6f3b1e0c-0000-4000-8000-000000000001\n", ""),
        "Detections/x/list.yaml": "- id: a\n",
        "Detections/x/bomb.yaml": bomb,
        "Detections/x/deep.yaml": "id: d\ncustomDetails: " + "[" * 2000 + "]" * 2000 + "\n",
        "Detections/x/badconn.yaml": rule("b-1").replace(
            "  - connectorId: SecurityEvents\n", "  - SecurityEvents\n  - connectorId: X\n"
        ),
        "Detections/x/latin1.yaml": "id: l\nname: caf\xe9\n".encode("latin-1"),
    }
    cat = parse_tree(tmp_path, files)
    errors = {i.location.file: i for i in cat.issues if i.severity == "error" and i.location}
    assert set(errors) == {
        f"Detections/x/{n}.yaml" for n in ("no_id", "list", "bomb", "deep", "badconn", "latin1")
    }
    assert errors["Detections/x/no_id.yaml"].message == "missing required field id"
    assert "aliases" in errors["Detections/x/bomb.yaml"].message
    assert "nesting" in errors["Detections/x/deep.yaml"].message
    assert errors["Detections/x/badconn.yaml"].location.field == "requiredDataConnectors[0]"
    assert "byte" in errors["Detections/x/latin1.yaml"].message


def test_hostile_values_are_bounded(tmp_path: Path) -> None:
    deep = "a:\n" + "".join("  " * (i + 1) + "b:\n" for i in range(20)) + "  " * 21 + "c: 1\n"
    nested = rule().replace(
        "customDetails:\n  CommandLine: CommandLine\n",
        "customDetails:\n" + "\n".join("  " + line for line in deep.splitlines()) + "\n",
    )
    huge = rule().replace(
        "  | where not(EventID !in (4720))\n",
        "".join(f"  | where X == {i}\n" for i in range(200_000)),
    )
    ctrl = rule(name='"evil\\e[31m\\Lname"')  # YAML escapes: ESC and U+2028
    cat = parse_one("n.yaml", nested.encode())
    assert "customDetails" not in cat.rules[0].extra
    assert messages(cat, "warning") == ["customDetails nests deeper than 8 levels; not kept"]
    big = parse_one("h.yaml", huge.encode())
    assert big.rules[0].body is not None and len(big.rules[0].body) > 3_000_000
    odd = parse_one("c.yaml", ctrl.encode("utf-8"))
    clean_rules(odd, LIMITS)  # what the import does before anything reads a title
    assert odd.rules[0].title == "evil[31m name"
    assert any("control characters removed" in m for m in messages(odd, "warning"))


def test_too_many_rules_is_too_large(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {f"Detections/x/{i}.yaml": rule(f"id-{i}") for i in range(3)}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(str(text))
    with pytest.raises(TooLarge):
        IMPORTER.parse(open_source(tmp_path, LIMITS), Limits(max_rules=2))


def test_a_plain_folder_reads_every_yaml_and_names_what_is_not_a_rule(tmp_path: Path) -> None:
    cat = parse_tree(tmp_path, {"mine/a.yaml": rule(), "mine/notes.yaml": "title: notes\n"})
    assert [r.path for r in cat.rules] == ["mine/a.yaml"]
    assert messages(cat, "warning") == ["no id and no query: not a Sentinel rule, not read"]


# ---------------------------------------------------------------------------------------------
# sniffing: Sentinel's and the other formats'


SIGMA = """title: Whoami
id: 1b1c2d3e-0000-4000-8000-000000000001
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\\\whoami.exe'
    condition: selection
"""


def test_sniff_both_ways() -> None:
    single = open_source(SENTINEL / NONDC, LIMITS)
    tree = open_source(SENTINEL, LIMITS)
    assert IMPORTER.sniff(tree) and IMPORTER.sniff(single)
    assert registry.detect(tree).format_id == "sentinel"
    assert registry.detect(single).format_id == "sentinel"
    assert registry.detect(source_from_bytes("r.yaml", rule().encode("utf-16"), LIMITS))
    for other in ("splunk", "elastic"):
        assert not IMPORTER.sniff(open_source(FIXTURES / other, LIMITS))
    assert not IMPORTER.sniff(source_from_bytes("w.yml", SIGMA.encode(), LIMITS))
    assert not IMPORTER.sniff(
        source_from_bytes("w.yml", (SIGMA + "query: x\nkind: y\n").encode(), LIMITS)
    )
    hunting = "id: h\nname: h\ndescription: d\nquery: SigninLogs\n"  # no rule marks
    assert not IMPORTER.sniff(source_from_bytes("h.yaml", hunting.encode(), LIMITS))


# ---------------------------------------------------------------------------------------------
# telemetry: the `sentinel` section of the shipped tables


def test_tables_link_data_types_and_event_ids() -> None:
    table = load_log_source_map(TABLES)
    section = yaml.safe_load(TABLES.read_text())["sentinel"]["data_types"]

    def comps(entries: list[dict[str, str]]) -> set[str]:
        return {c for c, _ in data_components_for(entries, table)}

    assert comps([{"connector": "M", "data_type": "DeviceProcessEvents"}]) == set(
        section["DeviceProcessEvents"]["components"]
    )
    coarse = [{"connector": "SecurityEvents", "data_type": "SecurityEvent"}]
    assert comps(coarse) == set(section["SecurityEvent"]["components"])
    # with an event id the coarse table link gives way to the event's own
    raw = yaml.safe_load(TABLES.read_text())
    expected = set(raw["events"]["security"]["4624"])
    assert comps([*coarse, {"data_type": "SecurityEvent", "event_id": "4624"}]) == expected
    assert (
        comps([{"connector": "ThreatIntelligence", "data_type": "ThreatIntelligenceIndicator"}])
        == set()
    )
    assert comps([{"connector": "AzureActiveDirectory"}]) == set()  # tables say, not connectors
    rules = [
        [{"connector": "X", "data_type": "Custom_Table_CL"}],
        [{"connector": "X", "data_type": "Custom_Table_CL"}, {"data_type": "SigninLogs"}],
        [{"connector": "T", "data_type": "ThreatIntelligenceIndicator"}],
    ]
    assert unlinked_values(rules, table, "data_type") == {"Custom_Table_CL": 2}


# ---------------------------------------------------------------------------------------------
# import through the service into a loaded database


@pytest.mark.parametrize("version", ["18.1", "17.1"])
def test_import_links_data_components_and_reports_unknown_tables(
    loaded_settings: Settings, tmp_path: Path, version: str
) -> None:
    root = tmp_path / "checkout"
    for p in SENTINEL.rglob("*.yaml"):
        dest = root / p.relative_to(SENTINEL)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(p.read_bytes())
    built = root / "Solutions" / "Built" / "Analytic Rules" / "built.yaml"
    built.parent.mkdir(parents=True)
    built.write_text(rule())
    engine: Engine = make_engine(loaded_settings.database_url)
    result = catalog_service.import_catalog(
        engine,
        loaded_settings,
        source=open_source(root, loaded_settings.limits),
        name=f"sentinel-{version.replace('.', '-')}",
        domain="enterprise",
        version=version,
    )
    report = result.catalog.report
    raw = raw_rules()
    with_technique = [d for d in raw.values() if d.get("relevantTechniques")]
    assert report.format == "sentinel" and report.rules == len(raw) - 1 + 1  # -pointer +built
    assert report.rules_with_technique == len(with_technique) + 1
    assert report.outcomes.ok == sum(len(d["relevantTechniques"]) for d in with_technique) + 2
    notes = [w.message for w in report.warnings]
    assert any(
        m.startswith("data_type 'Custom_Table_CL' (1 rule(s)) links to no data") for m in notes
    )
    assert not any("ThreatIntelligenceIndicator" in m for m in notes)
    with Session(engine) as s:
        nondc = catalog_service.get_rule(
            s, catalog=result.catalog.name, rule_id="b9d2eebc-5dcb-4888-8165-900db44443ab"
        )
        aws = catalog_service.get_rule(
            s, catalog=result.catalog.name, rule_id="0ee2aafb-4500-4e36-bcb1-e90eec2f0b9b"
        )
        retired = catalog_service.get_rule(
            s, catalog=result.catalog.name, rule_id="04384937-e927-4595-8f3c-89ff58ed231f"
        )
    events = yaml.safe_load(TABLES.read_text())["events"]["security"]
    assert set(nondc.data_components) == set(events["4662"]) | set(events["4624"])
    section = yaml.safe_load(TABLES.read_text())["sentinel"]["data_types"]
    assert set(aws.data_components) == set(section["AWSCloudTrail"]["components"])
    assert (retired.enabled, retired.data_components) == (False, [])
    if version == "18.1":
        assert nondc.analytics  # SecurityEvent 4624 / 4662 meet ATT&CK 18 analytics

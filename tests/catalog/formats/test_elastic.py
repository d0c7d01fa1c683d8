"""ElasticImporter on hand-built detection-rules TOML files (folder, archive, single file)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from app.catalog.base import ParsedCatalog
from app.catalog.formats.elastic import ElasticImporter
from app.catalog.source import open_source, source_from_bytes
from app.core.config import Limits

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "catalogs"
ELASTIC = FIXTURES / "elastic"
LIMITS = Limits()
IMPORTER = ElasticImporter()

POSH = "rules/windows/execution_posh_encoded_web_download.toml"
RUN_KEY = "rules/_deprecated/persistence_run_key_value_set.toml"
BURST = "rules/linux/discovery_hostname_lookup_burst.toml"
WIPE = "rules/cross-platform/impact_mass_file_deletion.toml"

RULE = """[metadata]
creation_date = "2024/01/01"
maturity = "production"
updated_date = "2024/01/01"

[rule]
name = "{name}"
rule_id = "{rule_id}"
severity = "low"
index = ["logs-*"]
"""


def parse_tree(files: dict[str, str], tmp_path: Path) -> ParsedCatalog:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    return IMPORTER.parse(open_source(tmp_path, LIMITS), LIMITS)


def errors(
    cat: ParsedCatalog, severity: str = "error"
) -> list[tuple[str | None, int | None, str | None, str]]:
    return [
        (i.location.file, i.location.line, i.location.field, i.message)
        for i in cat.issues
        if i.severity == severity and i.location
    ]


def test_folder_of_rules() -> None:
    cat = IMPORTER.parse(open_source(ELASTIC, LIMITS), LIMITS)
    assert cat.issues == []
    assert (cat.format_id, cat.vendor, cat.product, cat.files_read) == (
        "elastic",
        "Elastic",
        "Elastic Security",
        4,
    )
    rules = {r.path: r for r in cat.rules}
    assert sorted(rules) == sorted([POSH, RUN_KEY, BURST, WIPE])

    posh = rules[POSH]
    assert posh.rule_id == "6a3e1f0c-2d4b-4c8e-9b7a-0f5d2e8c1a94"
    assert posh.title == "PowerShell Encoded Command with Web Download"
    assert posh.name == "execution_posh_encoded_web_download"
    assert posh.package == "rules/windows"
    assert posh.techniques == ["T1059.001", "T1105"]  # T1059 is covered through its subtechnique
    assert posh.tactics == ["TA0002", "TA0011"]
    assert posh.extra["attack_pairs"] == [["TA0002", "T1059.001"], ["TA0011", "T1105"]]
    assert posh.log_sources == [
        {"index": "logs-endpoint.events.process-*"},
        {"index": "logs-windows.sysmon_operational-*"},
        {"index": "winlogbeat-*"},
        {"data_source": "Elastic Defend"},
        {"data_source": "Sysmon"},
    ]
    assert posh.platforms == ["windows"]
    assert (posh.severity, posh.status, posh.enabled) == ("high", "production", True)
    assert posh.extra["risk_score"] == 73
    assert posh.extra["integration"] == ["endpoint", "windows"]
    assert posh.line == 7
    assert "Tactic: Execution" in posh.raw_tags

    run_key = rules[RUN_KEY]
    assert (run_key.techniques, run_key.tactics) == (["T1547.001"], ["TA0003"])
    assert (run_key.status, run_key.enabled, run_key.severity) == ("deprecated", False, "low")

    burst = rules[BURST]
    assert (burst.techniques, burst.tactics, burst.platforms) == ([], [], ["linux"])
    assert (burst.status, burst.enabled) == ("development", True)
    assert "attack_pairs" not in burst.extra

    wipe = rules[WIPE]
    assert (wipe.techniques, wipe.tactics) == ([], ["TA0040"])  # a tactic-only mapping
    assert wipe.platforms == ["linux", "macos"]


def test_archive_and_single_file_read_the_same(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(ELASTIC.rglob("*.toml")):
            tar.add(path, arcname=path.relative_to(ELASTIC).as_posix())
    tree = IMPORTER.parse(source_from_bytes("rules.tar.gz", buf.getvalue(), LIMITS), LIMITS)
    folder = IMPORTER.parse(open_source(ELASTIC, LIMITS), LIMITS)
    assert [(r.rule_id, r.techniques, r.path) for r in tree.rules] == [
        (r.rule_id, r.techniques, r.path) for r in folder.rules
    ]
    single = IMPORTER.parse(open_source(ELASTIC / POSH, LIMITS), LIMITS)
    [rule] = single.rules
    assert (rule.rule_id, rule.path, rule.package) == (
        "6a3e1f0c-2d4b-4c8e-9b7a-0f5d2e8c1a94",
        "execution_posh_encoded_web_download.toml",
        None,
    )


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = RULE.format(name="x", rule_id="1") + "risk_score = \ntags = []\n"
    cat = parse_tree({"rules/bad.toml": bad}, tmp_path)
    assert cat.rules == []
    [(file, line, _, message)] = errors(cat)
    assert (file, line) == ("rules/bad.toml", 11)
    assert message.startswith("invalid TOML") and "line" not in message


def test_missing_rule_id_and_duplicates(tmp_path: Path) -> None:
    files = {
        "rules/a.toml": RULE.format(name="A", rule_id="same-id"),
        "rules/b.toml": RULE.format(name="B", rule_id="same-id"),
        "rules/c.toml": RULE.format(name="C", rule_id="").replace('rule_id = ""\n', ""),
    }
    cat = parse_tree(files, tmp_path)
    assert errors(cat) == [
        ("rules/c.toml", 6, "rule.rule_id", "missing required field rule_id"),
        ("rules/b.toml", 6, "id", "duplicate rule id 'same-id' (first at rules/a.toml line 6)"),
    ]
    assert [r.title for r in cat.rules] == ["A", "B"]


def test_threat_problems_are_located(tmp_path: Path) -> None:
    threat = """
[[rule.threat]]
framework = "MITRE ATT&CK"
[[rule.threat.technique]]
name = "no id"
[rule.threat.tactic]
id = "TA0002"

[[rule.threat]]
framework = "Other Framework"
[rule.threat.tactic]
id = "X1"
"""
    cat = parse_tree({"rules/t.toml": RULE.format(name="T", rule_id="t-1") + threat}, tmp_path)
    assert errors(cat) == [
        ("rules/t.toml", 12, "rule.threat[0].technique[0].id", "missing required field id")
    ]
    assert errors(cat, "warning") == [
        (
            "rules/t.toml",
            19,
            "rule.threat[1].framework",
            "framework 'Other Framework' is not MITRE ATT&CK; block not read",
        ),
    ]
    [rule] = cat.rules
    assert (rule.techniques, rule.tactics) == ([], ["TA0002"])


def test_other_toml_files_are_not_rules(tmp_path: Path) -> None:
    files = {
        "pyproject.toml": '[project]\nname = "detection-rules"\n',
        "rules/meta_only.toml": '[metadata]\nmaturity = "production"\n',
        "rules/ok.toml": RULE.format(name="ok", rule_id="ok-1"),
        "README.md": "not toml",
    }
    cat = parse_tree(files, tmp_path)
    assert [r.rule_id for r in cat.rules] == ["ok-1"]
    assert cat.files_read == 3
    assert errors(cat, "warning") == [
        ("rules/meta_only.toml", None, None, "no [rule] table: the file is not read as a rule")
    ]


def test_sniff(tmp_path: Path) -> None:
    assert IMPORTER.sniff(open_source(ELASTIC, LIMITS))
    assert IMPORTER.sniff(open_source(ELASTIC / BURST, LIMITS))
    assert not IMPORTER.sniff(open_source(FIXTURES / "splunk", LIMITS))
    assert not IMPORTER.sniff(open_source(FIXTURES / "canonical" / "example-siem.yaml", LIMITS))
    pyproject = source_from_bytes("pyproject.toml", b'[project]\nname = "x"\n', LIMITS)
    assert not IMPORTER.sniff(pyproject)


@pytest.mark.parametrize("maturity", ["production", "development", "deprecated"])
def test_maturity_sets_status_and_enabled(maturity: str, tmp_path: Path) -> None:
    text = RULE.format(name="m", rule_id="m-1").replace("production", maturity)
    [rule] = parse_tree({"rules/m.toml": text}, tmp_path).rules
    assert (rule.status, rule.enabled) == (maturity, maturity != "deprecated")

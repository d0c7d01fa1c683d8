"""CanonicalImporter: the four spellings, the shipped MaxPatrol catalog, and located problems."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from app.catalog import registry
from app.catalog import service as catalog_service
from app.catalog.base import ParsedCatalog
from app.catalog.formats.canonical import CanonicalImporter
from app.catalog.source import open_source, source_from_bytes
from app.core.config import Limits
from app.core.errors import InvalidInput, Location

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "catalogs"
CANONICAL = FIXTURES / "canonical"
KB_CATALOG = ROOT / "kb" / "catalogs" / "maxpatrol-siem.yaml"
SCHEMA = ROOT / "kb" / "schemas" / "canonical-catalog.schema.json"
LIMITS = Limits()
IMPORTER = CanonicalImporter()


def parse_file(path: Path) -> ParsedCatalog:
    return IMPORTER.parse(open_source(path, LIMITS), LIMITS)


def parse_text(filename: str, text: str) -> ParsedCatalog:
    return IMPORTER.parse(source_from_bytes(filename, text.encode(), LIMITS), LIMITS)


def problems(
    cat: ParsedCatalog, severity: str = "error"
) -> list[tuple[int | None, str | None, str]]:
    return [
        (
            i.location.line if i.location else None,
            i.location.field if i.location else None,
            i.message,
        )
        for i in cat.issues
        if i.severity == severity
    ]


def summary(cat: ParsedCatalog) -> list[tuple[Any, ...]]:
    return [
        (
            r.rule_id,
            r.package,
            r.name,
            r.title,
            r.techniques,
            r.tactics,
            r.log_sources,
            r.platforms,
            r.severity,
            r.status,
            r.enabled,
        )
        for r in cat.rules
    ]


EXPECTED = [
    (
        "EX-CR-0001",
        "mitre_attck_lateral_movement",
        "Remote_Service_Logon",
        "Logon to a remote service with explicit credentials",
        ["T1021.002@lateral-movement", "T1078"],
        ["lateral-movement"],
        [
            {"text": "Microsoft-Windows-Security-Auditing:4624"},
            {"text": "Microsoft-Windows-Security-Auditing:4648"},
        ],
        ["windows"],
        "medium",
        "production",
        True,
    ),
    (
        "EX-CR-0002",
        "mitre_attck_defense_evasion",
        "Audit_Log_Cleared",
        "The security audit log was cleared",
        ["T1070.001"],
        [],
        [{"text": "Microsoft-Windows-Eventlog:1102"}],
        ["windows"],
        "high",
        None,
        True,
    ),
    (
        "EX-CR-0003",
        "mitre_attck_persistence",
        "Cron_Job_Added",
        "A cron job was added",
        ["T1053.003@TA0003"],
        [],
        [],
        ["linux"],
        "low",
        "experimental",
        False,
    ),
]


# --- the shipped catalog ------------------------------------------------------------------------


def test_maxpatrol_catalog_maps_pt_cr_956_to_t1550_001() -> None:
    cat = parse_file(KB_CATALOG)
    assert cat.issues == []
    assert (cat.name, cat.vendor, cat.product) == (
        "maxpatrol-siem",
        "Positive Technologies",
        "MaxPatrol SIEM",
    )
    assert (cat.attack_domain, cat.attack_version) == ("enterprise", "17.1")
    rules = {r.rule_id: r for r in cat.rules}
    assert list(rules) == ["PT-CR-956", "PT-CR-1779", "PT-CR-1786"]
    pt956 = rules["PT-CR-956"]
    assert pt956.techniques == ["T1550.001"]
    assert (pt956.package, pt956.name, pt956.title) == (
        "mitre_attck_lateral_movement",
        "Disable_Smartcard",
        "Smart Card is disabled in the registry",
    )
    assert rules["PT-CR-1779"].techniques == ["T1216@defense-evasion", "T1218@defense-evasion"]
    assert rules["PT-CR-1786"].techniques == ["T1220@defense-evasion"]
    assert rules["PT-CR-1786"].severity == "high"
    assert pt956.line == 17  # the `- id:` line, after the source comment


def test_maxpatrol_catalog_cites_its_sources() -> None:
    text = KB_CATALOG.read_text(encoding="utf-8")
    assert "shared/seed/maxpatrol-T1550.001.txt" in text
    assert text.count("github.com/Security-Experts-Community/open-xp-rules") == 2


# --- the JSON Schema ---------------------------------------------------------------------------


def schema_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def document_files() -> list[Path]:
    return [KB_CATALOG, *sorted(CANONICAL.glob("*.yaml")), *sorted(CANONICAL.glob("*.json"))]


@pytest.mark.parametrize("path", document_files(), ids=lambda p: p.name)
def test_every_document_fixture_validates_against_the_schema(path: Path) -> None:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    schema_validator().validate(doc)
    assert problems(parse_file(path)) == []


BAD_DOCUMENTS = {
    "missing id": {"rules": [{"name": "x"}]},
    "technique not an id": {"rules": [{"id": "A-1", "techniques": ["attack.t1059"]}]},
    "unquoted attack version": {"attack": {"version": 18.1}, "rules": []},
    "unknown domain": {"attack": {"domain": "enterprise-attack"}, "rules": []},
    "enabled as text": {"rules": [{"id": "A-1", "enabled": "no"}]},
    "number as text": {"rules": [{"id": "A-1", "severity": 3}]},
    "rules missing": {"name": "x"},
}


@pytest.mark.parametrize("doc", BAD_DOCUMENTS.values(), ids=list(BAD_DOCUMENTS))
def test_schema_and_importer_refuse_the_same_documents(doc: dict[str, Any]) -> None:
    assert not schema_validator().is_valid(doc)
    assert problems(parse_text("bad.json", json.dumps(doc)))


def test_unknown_field_is_a_schema_error_but_only_an_import_warning() -> None:
    doc = {"rules": [{"id": "A-1", "owner": "team"}], "colour": "red"}
    assert not schema_validator().is_valid(doc)
    cat = parse_text("c.json", json.dumps(doc))
    assert problems(cat) == []
    assert {f for _, f, _ in problems(cat, "warning")} == {"colour", "rules[0].owner"}
    assert cat.rules[0].extra == {"owner": "team"}


# --- YAML, JSON, CSV ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["example-siem.yaml", "example-siem.json", "example-siem.csv"])
def test_the_three_table_spellings_give_the_same_catalog(name: str) -> None:
    cat = parse_file(CANONICAL / name)
    assert cat.issues == []
    assert summary(cat) == [
        e
        if name != "example-siem.csv" or e[0] != "EX-CR-0003"
        else (*e[:3], "A cron job was added, by any user", *e[4:])
        for e in EXPECTED
    ]
    assert (cat.name, cat.vendor, cat.product, cat.version) == (
        "example-siem",
        "Example Security",
        "Example SIEM",
        "2024.2",
    )
    assert (cat.attack_domain, cat.attack_version) == ("enterprise", "18.1")
    assert cat.files_read == 1


def test_yaml_rules_carry_their_lines_and_extensions() -> None:
    cat = parse_file(CANONICAL / "example-siem.yaml")
    assert [r.line for r in cat.rules] == [10, 25, 33]
    assert cat.rules[2].extra == {"x-owner": "detection-team"}
    assert cat.rules[0].references == ["https://attack.mitre.org/techniques/T1021/002/"]
    assert cat.rules[0].path == "example-siem.yaml"


def test_json_and_csv_rules_carry_their_lines() -> None:
    assert [r.line for r in parse_file(CANONICAL / "example-siem.json").rules] == [9, 26, 36]
    assert [r.line for r in parse_file(CANONICAL / "example-siem.csv").rules] == [9, 10, 11]


def test_malformed_yaml_is_an_error_with_its_line() -> None:
    cat = parse_text("c.yaml", "name: x\nrules:\n  - id: A-1\n    title: [unclosed\n")
    assert cat.rules == []
    [(line, _, message)] = problems(cat)
    assert line is not None and line >= 4
    assert message.startswith("invalid YAML")


def test_a_yaml_syntax_error_names_the_line_where_the_construct_starts() -> None:
    lines = [
        "name: x",
        "rules:",
        "  - id: A-1",
        '    title: "an unclosed quote',
        "  - id: A-2",
        "    title: fine",
    ]
    cat = parse_text("c.yaml", "\n".join(lines) + "\n")
    start = next(n for n, t in enumerate(lines, 1) if t.count('"') == 1)
    end = len(lines) + 1  # the parser gives up at the end of the stream
    assert problems(cat) == [
        (
            start,
            None,
            f"invalid YAML: while scanning a quoted scalar that starts at line {start}: "
            f"found unexpected end of stream (line {end})",
        )
    ]


def test_malformed_json_is_an_error_with_its_line() -> None:
    cat = parse_text("c.json", '{\n  "rules": [\n    {"id": "A-1",}\n  ]\n}\n')
    [(line, _, message)] = problems(cat)
    assert line == 3
    assert message.startswith("not valid JSON")


def test_duplicate_ids_name_both_places() -> None:
    text = "rules:\n  - id: A-1\n    title: one\n  - id: B-2\n  - id: A-1\n    title: two\n"
    cat = parse_text("c.yaml", text)
    assert problems(cat) == [(5, "id", "duplicate rule id 'A-1' (first at c.yaml line 2)")]
    assert [r.rule_id for r in cat.rules] == ["A-1", "B-2", "A-1"]  # reported, not dropped


def test_missing_id_and_wrong_types_are_located_errors() -> None:
    text = (
        "rules:\n"
        "  - title: no id here\n"
        "  - id: A-1\n"
        "    techniques: [T1059, 'attack.t1003']\n"
        "    platforms: {windows: true}\n"
        "    enabled: maybe\n"
        "  - just text\n"
    )
    cat = parse_text("c.yaml", text)
    assert problems(cat) == [
        (2, "rules[0].id", "missing required field id"),
        (5, "rules[1].platforms", "rules[1].platforms must be a list of strings"),
        (
            4,
            "rules[1].techniques",
            "technique 'attack.t1003' is not Txxxx or Txxxx.xxx (optionally @tactic)",
        ),
        (6, "rules[1].enabled", "enabled must be true or false"),
        (7, "rules[2]", "a rule is a mapping of fields"),
    ]
    assert [r.rule_id for r in cat.rules] == ["A-1"]


def test_catalog_level_problems() -> None:
    cat = parse_text("c.yaml", "name: x\nversion: 17.10\nattack: {domain: ics, version: v18}\n")
    assert problems(cat) == [
        (2, "version", 'version must be a string; quote it ("17.1")'),
        (3, "attack.version", "attack.version must look like \"18.1\", not 'v18'"),
        (None, "rules", "missing required field rules"),
    ]
    assert cat.attack_domain == "ics"


def test_csv_problems_name_their_rows() -> None:
    text = (
        "# attack.domain: enterprise\n"
        "id,title,techniques,enabled,owner\n"
        "A-1,First,T1059;T1105,yes,me\n"
        ",No id,T1003,,\n"
        "A-3,Third,T1003,perhaps,\n"
        "A-1,Again,,,,extra\n"
    )
    cat = parse_text("c.csv", text)
    assert problems(cat) == [
        (4, "id", "missing required field id"),
        (5, "enabled", "enabled must be true or false, not 'perhaps'"),
        (6, None, "row has 6 cells, the header 5"),
        (6, "id", "duplicate rule id 'A-1' (first at c.csv line 3)"),
    ]
    assert problems(cat, "warning") == [(2, "owner", "unknown column 'owner' kept in extra")]
    assert cat.rules[0].techniques == ["T1059", "T1105"]
    assert cat.rules[0].extra == {"owner": "me"}


def test_csv_without_id_column_or_with_broken_quotes() -> None:
    assert problems(parse_text("c.csv", "title,techniques\nx,T1059\n")) == [
        (1, "id", "missing required column id")
    ]
    broken = parse_text("c.csv", 'id,title\nA-1,"ok"\nA-2,"unterminated\n')
    [(line, _, message)] = problems(broken)
    assert line == 3 and message.startswith("invalid CSV")


def test_a_csv_without_an_id_column_is_detected_and_says_so() -> None:
    """Detection used to refuse it as "cannot tell the catalog format", hiding the real problem."""
    source = source_from_bytes("team.csv", b"title,techniques\nx,T1059\n", LIMITS)
    assert registry.detect(source).format_id == "canonical"
    with pytest.raises(InvalidInput) as info:
        catalog_service.parse_source(source, format_id="auto", limits=LIMITS)
    assert info.value.message == "missing required column id (1 error(s); nothing imported)"
    assert info.value.location == Location(file="team.csv", line=1, field="id")


def test_a_csv_row_with_too_few_cells_is_kept_with_a_warning() -> None:
    text = "id,title,techniques,platforms\nA-1,First\nA-2,Second,T1059,windows\n"
    cat = parse_text("c.csv", text)
    assert problems(cat) == []
    assert problems(cat, "warning") == [
        (2, None, "row has 2 cells, the header 4: techniques, platforms left empty")
    ]
    assert [(r.rule_id, r.title, r.techniques) for r in cat.rules] == [
        ("A-1", "First", []),
        ("A-2", "Second", ["T1059"]),
    ]


# --- the line form ------------------------------------------------------------------------------


def test_seed_line_form_gives_pt_cr_956() -> None:
    cat = parse_file(CANONICAL / "maxpatrol-T1550.001-excerpt.txt")
    assert cat.issues == []
    [rule] = cat.rules
    assert (rule.rule_id, rule.package, rule.name, rule.title, rule.techniques, rule.line) == (
        "PT-CR-956",
        "mitre_attck_lateral_movement",
        "Disable_Smartcard",
        "Smart Card is disabled in the registry",
        ["T1550.001"],
        13,
    )


def test_line_form_merges_headings_and_keeps_colons_in_titles() -> None:
    cat = parse_file(CANONICAL / "example-lines.txt")
    assert cat.issues == []
    assert (cat.vendor, cat.product) == ("Example Security", "Example SIEM")
    assert [(r.rule_id, r.techniques, r.title, r.line) for r in cat.rules] == [
        (
            "EX-CR-0001",
            ["T1021.002", "T1078"],
            "Logon to a remote service: explicit credentials",
            6,
        ),
        ("EX-CR-0004", ["T1078"], "Logon by an account unused for 90 days", 12),
    ]


def test_line_form_rule_outside_a_heading_is_kept_with_a_warning() -> None:
    cat = parse_text("kb.txt", "pkg: X-1: Name: Title\nT1078: Valid Accounts\npkg: X-2: N: T\n")
    assert [(r.rule_id, r.techniques) for r in cat.rules] == [("X-1", []), ("X-2", ["T1078"])]
    assert problems(cat, "warning") == [(1, None, "rule X-1 is not under a technique heading")]


def test_text_without_rule_lines_is_an_error() -> None:
    assert problems(parse_text("notes.txt", "T1078: Valid Accounts\nnothing else\n")) == [
        (None, None, "no rule lines (`<package>: <id>: <name>: <title>`) found")
    ]


# --- sniffing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [KB_CATALOG, *sorted(CANONICAL.iterdir())],
    ids=lambda p: p.name,
)
def test_sniff_claims_canonical_files(path: Path) -> None:
    assert IMPORTER.sniff(open_source(path, LIMITS))


SIGMA = b"""title: Whoami
id: 1b1c2d3e-0000-4000-8000-000000000001
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\whoami.exe'
    condition: selection
tags:
    - attack.t1033
"""


def test_sniff_leaves_other_formats_alone(tmp_path: Path) -> None:
    assert not IMPORTER.sniff(source_from_bytes("whoami.yml", SIGMA, LIMITS))
    assert not IMPORTER.sniff(source_from_bytes("notes.txt", b"just: some notes\n", LIMITS))
    assert not IMPORTER.sniff(open_source(FIXTURES / "elastic", LIMITS))
    assert not IMPORTER.sniff(open_source(FIXTURES / "splunk", LIMITS))
    splunk_file = next((FIXTURES / "splunk").rglob("*.yml"))
    assert not IMPORTER.sniff(open_source(splunk_file, LIMITS))
    xp = tmp_path / "rule"
    xp.mkdir()
    (xp / "metainfo.yaml").write_text("ObjectId: SEC-CR-1\nrules: []\n", encoding="utf-8")
    (xp / "rule.co").write_text("rule X: e\n", encoding="utf-8")
    assert not IMPORTER.sniff(open_source(tmp_path, LIMITS))


def test_a_folder_is_not_a_canonical_catalog() -> None:
    cat = IMPORTER.parse(open_source(FIXTURES / "elastic", LIMITS), LIMITS)
    assert cat.rules == []
    assert [i.message for i in cat.issues] == ["a canonical catalog is one file, found 4"]


# --- the documentation's examples ---------------------------------------------------------------

DOC = ROOT / "docs" / "catalog-format.md"


@pytest.mark.parametrize(
    ("lang", "suffix"), [("yaml", "yaml"), ("json", "json"), ("csv", "csv"), ("text", "txt")]
)
def test_documented_examples_parse_cleanly(lang: str, suffix: str) -> None:
    blocks = re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks
    for block in blocks:
        source = source_from_bytes(f"example.{suffix}", block.encode(), LIMITS)
        assert IMPORTER.sniff(source)
        cat = IMPORTER.parse(source, LIMITS)
        assert cat.issues == []
        assert cat.rules[0].rule_id in ("EX-CR-0001", "PT-CR-956")
        if lang in ("yaml", "json"):
            schema_validator().validate(yaml.safe_load(block))

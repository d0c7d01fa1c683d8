"""MaxPatrolXPImporter against the real open-xp-rules snapshot and a hand-made tree.

Expected numbers come from the raw tarball (tarfile + yaml.safe_load of every metainfo.yaml
under correlation_rules), independently of the importer.
"""

from __future__ import annotations

import gzip
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from app.catalog.base import ParsedCatalog, ParsedRule
from app.catalog.formats.maxpatrol_xp import MaxPatrolXPImporter
from app.catalog.formats.sigma import SigmaImporter
from app.catalog.source import open_source, source_from_bytes
from app.core.config import Limits

TARBALL = "open-xp-rules-rules.tar.gz"
SCT = (
    "packages/windows_open_package/correlation_rules/mitre_attck_defense_evasion/"
    "Suspicious_SCT_Execution"
)


@pytest.fixture(scope="module")
def real(catalog_dir: Path) -> ParsedCatalog:
    limits = Limits()
    source = open_source(catalog_dir / TARBALL, limits)
    return MaxPatrolXPImporter().parse(source, limits)


def by_id(cat: ParsedCatalog) -> dict[str, ParsedRule]:
    return {r.rule_id: r for r in cat.rules}


def raw_metainfo(tarball: Path) -> dict[str, dict[str, Any]]:
    """Rule folder -> parsed metainfo.yaml, for every one under a correlation_rules folder."""
    out = {}
    with tarfile.open(tarball) as tar:
        for member in tar:
            folder, _, name = member.name.rpartition("/")
            if member.isfile() and name == "metainfo.yaml" and "/correlation_rules/" in folder:
                fh = tar.extractfile(member)
                out[folder] = yaml.safe_load(fh.read() if fh else b"")
    return out


def test_real_catalog_counts_match_raw_tarball(catalog_dir: Path, real: ParsedCatalog) -> None:
    raw = raw_metainfo(catalog_dir / TARBALL)
    attack = {
        f: (m.get("ContentRelations") or {}).get("Implements", {}).get("ATTACK") or {}
        for f, m in raw.items()
    }
    techniques = {f: {t for ts in a.values() for t in ts} for f, a in attack.items()}
    assert len(raw) == 116
    assert sum(1 for t in techniques.values() if t) == 114
    assert len({t.upper() for ts in techniques.values() for t in ts}) == 89

    assert sorted(r.path or "" for r in real.rules) == sorted(raw)
    assert sum(1 for r in real.rules if r.techniques) == 114
    assert len({t.upper() for r in real.rules for t in r.techniques}) == 89
    assert {r.rule_id for r in real.rules} == {m["ObjectId"] for m in raw.values()}
    for rule in real.rules:
        assert set(rule.techniques) == techniques[rule.path or ""], rule.path
    assert real.issues == []
    assert real.files_read == 116 * 4  # metainfo, two i18n files, rule.co


def test_pt_rules(real: ParsedCatalog) -> None:
    rules = by_id(real)
    sct = rules["PT-CR-1779"]
    assert (sct.path, sct.name) == (SCT, "Suspicious_SCT_Execution")
    assert sct.title == sct.description == "Suspicious sct scripts execution"
    assert sct.extra["description_ru"] == "Запуск подозрительных sct скриптов"
    assert (sct.techniques, sct.tactics) == (["T1216", "T1218"], ["defense-evasion"])
    assert sct.extra["attack_pairs"] == [["defense-evasion", "T1216"], ["defense-evasion", "T1218"]]
    assert (sct.severity, sct.platforms, sct.log_sources) == ("high", ["Windows"], [])
    assert (sct.package, sct.extra["group"]) == (
        "windows_open_package",
        "mitre_attck_defense_evasion",
    )
    assert sct.references[0].startswith("https://bohops.com/2018/02/26/")
    assert rules["PT-CR-1786"].techniques == ["T1220"]


def test_data_sources_pairs_and_importance(real: ParsedCatalog) -> None:
    rules = {r.path.rpartition("/")[2]: r for r in real.rules if r.path}
    proxy = rules["ProxyNotShell"]
    assert proxy.log_sources == [
        {"provider": "Microsoft-Windows-Security-Auditing", "event_id": "4624"},
        {"provider": "Microsoft-Windows-Security-Auditing", "event_id": "4688"},
        {"provider": "Microsoft-Windows-Sysmon", "event_id": "1"},
    ]
    assert proxy.tactics == ["initial_access"]  # as written upstream
    team = rules["CVE_2023_42793_Teamcity_Token_Manipulation"]
    assert team.techniques == ["T1195.001", "T1195.002", "T1134.003"]
    assert team.extra["attack_pairs"][2:] == [
        ["privilege-escalation", "T1134.003"],
        ["defense-evasion", "T1134.003"],
    ]
    assert (team.package, team.extra["group"], team.platforms) == ("open_vulnerabilities", None, [])
    zerologon = rules["CVE_2020_1472_Zerologon_Exploitation"]
    assert zerologon.platforms == ["Windows"]  # from its data source, not the package
    schtasks = rules["Schtasks_Commandline"]
    assert (schtasks.severity, schtasks.extra["importance_values"]) == ("high", ["high", "medium"])
    mac = rules["MacOS_Do_Shell_Script_with_Administrator_Privileges"]
    assert mac.platforms == ["macOS"]
    assert mac.log_sources == [{"provider": "MacOS", "event_id": "es_logger_process_execution"}]
    assert rules["Enumeration_Users_In_Groups"].techniques == []


def test_agrees_with_normalized_file(catalog_dir: Path, real: ParsedCatalog) -> None:
    path = catalog_dir / "open-xp-rules.normalized.json.gz"
    records = {r["path"]: r for r in orjson.loads(gzip.decompress(path.read_bytes()))}
    assert len(records) == len(real.rules)
    for rule in real.rules:
        rec = records[rule.path or ""]
        assert (rule.rule_id, rule.name, rule.description) == (
            rec["id"],
            rec["title"],
            rec["description"],
        )
        assert (rule.techniques, rule.tactics, rule.severity) == (
            rec["techniques"],
            rec["tactics"],
            rec["level"],
        )
        assert rule.extra["attack_pairs"] == rec["extra"]["tactic_technique_pairs"]
        assert (rule.package, rule.extra["group"]) == (
            rec["extra"]["package"],
            rec["extra"]["group"],
        )
        flat = [f"{s['provider']}:{s['event_id']}" for s in rule.log_sources]
        assert flat == rec["log_sources"]
        assert [p.lower() for p in rule.platforms] == rec["platforms"]


def test_sniff_and_speed(catalog_dir: Path, limits: Limits) -> None:
    xp = open_source(catalog_dir / TARBALL, limits)
    assert (MaxPatrolXPImporter().sniff(xp), SigmaImporter().sniff(xp)) == (True, False)
    lone = source_from_bytes("metainfo.yaml", b"ObjectId: SEC-CR-1\n", limits)
    assert MaxPatrolXPImporter().sniff(lone) is False
    start = time.perf_counter()
    MaxPatrolXPImporter().parse(xp, limits)
    assert time.perf_counter() - start < 1.0  # measured about 0.04 s; generous for slow CI


META = """ObjectId: {oid}
ContentAutoName: {name}
ExpertContext:
    DataSources:
        - Provider: Microsoft-Windows-Sysmon
          EventID: [1, 3]
        - Provider: Linux-auditd
ContentRelations:
    Implements:
        ATTACK:
            execution: [T1059.001]
            persistence: [T1053.005, T1059.001]
"""
BODY = 'rule {name}: e\nemit {{\n    $importance = "low"\n    $correlation_type = "event"\n}}\n'


def rule_files(folder: str, oid: str, name: str) -> dict[str, str]:
    return {
        f"{folder}/metainfo.yaml": META.format(oid=oid, name=name),
        f"{folder}/rule.co": BODY.format(name=name),
        f"{folder}/i18n/i18n_en.yaml": f"Description: '{name} in English'\n",
        f"{folder}/i18n/i18n_ru.yaml": f"Description: '{name} по-русски'\n",
    }


def test_users_own_tree_reports_problems(
    make_tree: Callable[[dict[str, str]], Path], limits: Limits
) -> None:
    files = {
        **rule_files("mine/a", "SEC-CR-1", "A"),
        **rule_files("mine/dup", "SEC-CR-1", "Dup"),
        **rule_files("mine/broken", "SEC-CR-2", "Broken"),
        "mine/broken/metainfo.yaml": "ObjectId: SEC-CR-2\nContentRelations: [unclosed\n",
        "mine/plain/metainfo.yaml": "ContentAutoName: Plain\n",
        "mine/plain/rule.co": "rule Plain: e\n",
        "_meta/metainfo.yaml": "ObjectId: SEC-PKG-1\n",
        "formula/metainfo.yaml": "ObjectId: SEC-NF-1\n",
        "formula/formula.xp": "x\n",
    }
    source = open_source(make_tree(files), limits)
    assert (MaxPatrolXPImporter().sniff(source), SigmaImporter().sniff(source)) == (True, False)
    cat = MaxPatrolXPImporter().parse(source, limits)

    assert [r.rule_id for r in cat.rules] == ["SEC-CR-1", "mine/plain"]
    a, plain = cat.rules
    assert (a.name, a.title, a.extra["description_ru"]) == ("A", "A in English", "A по-русски")
    assert a.techniques == ["T1059.001", "T1053.005"]
    assert a.tactics == ["execution", "persistence"]
    assert a.extra["attack_pairs"] == [
        ["execution", "T1059.001"],
        ["persistence", "T1053.005"],
        ["persistence", "T1059.001"],
    ]
    assert a.log_sources == [
        {"provider": "Microsoft-Windows-Sysmon", "event_id": "1"},
        {"provider": "Microsoft-Windows-Sysmon", "event_id": "3"},
        {"provider": "Linux-auditd"},
    ]
    assert (a.platforms, a.severity, a.package) == (["Windows", "Linux"], "low", None)
    assert (plain.techniques, plain.severity, plain.name, plain.title) == (
        [],
        None,
        "Plain",
        "Plain",
    )

    found = sorted(
        (i.severity, i.location.file if i.location else "", i.location.line if i.location else None)
        for i in cat.issues
    )
    assert found == [
        ("error", "mine/broken/metainfo.yaml", 2),  # where the unclosed list starts
        ("error", "mine/dup/metainfo.yaml", 1),
        ("warning", "mine/plain/metainfo.yaml", None),
        ("warning", "mine/plain/metainfo.yaml", None),
    ]
    dup = next(i for i in cat.issues if "duplicate" in i.message)
    assert "mine/a" in dup.message and "mine/dup" in dup.message


def test_upstream_layout_without_rule_body(
    make_tree: Callable[[dict[str, str]], Path], limits: Limits
) -> None:
    folder = "packages/linux_pkg/correlation_rules/grp/Rule_X"
    files = rule_files(folder, "SEC-CR-9", "Rule_X")
    del files[f"{folder}/rule.co"]
    files["packages/linux_pkg/_meta/metainfo.yaml"] = "ObjectId: SEC-PKG-2\n"
    cat = MaxPatrolXPImporter().parse(open_source(make_tree(files), limits), limits)
    assert [
        (r.rule_id, r.package, r.extra["group"], r.platforms, r.severity) for r in cat.rules
    ] == [("SEC-CR-9", "linux_pkg", "grp", ["Linux"], None)]
    assert [(i.severity, "rule.co" in i.message) for i in cat.issues] == [("warning", True)]

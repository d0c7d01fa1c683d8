"""SigmaImporter against the real SigmaHQ snapshots and small hand-made trees.

Expected numbers are computed here from the raw tarballs (tarfile + a regex over tag lines, or
yaml.safe_load for single files), independently of the importer.
"""

from __future__ import annotations

import gzip
import itertools
import re
import tarfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml

from app.catalog.base import ParsedCatalog
from app.catalog.formats.maxpatrol_xp import MaxPatrolXPImporter
from app.catalog.formats.sigma import PLATFORMS, SigmaImporter
from app.catalog.source import open_source, source_from_bytes
from app.core.config import Limits

SCOPE = (
    "rules",
    "rules-emerging-threats",
    "rules-threat-hunting",
    "rules-compliance",
    "rules-placeholder",
    "deprecated",
    "unsupported",
)
TAG_TECHNIQUE = re.compile(rb"^\s*-\s*attack\.(t\d{4}(?:\.\d{3})?)\s*(?:#.*)?$", re.I | re.M)
APT29 = "unsupported/windows/win_apt_apt29_tor.yml"
MIMIKATZ = "rules/windows/process_creation/proc_creation_win_hktl_mimikatz_command_line.yml"

_parsed: dict[str, ParsedCatalog] = {}


def parse_real(catalog_dir: Path, name: str, limits: Limits) -> ParsedCatalog:
    """Each real catalog is parsed once per test session (about a second each)."""
    if name not in _parsed:
        source = open_source(catalog_dir / f"{name}-rules.tar.gz", limits)
        _parsed[name] = SigmaImporter().parse(source, limits)
    return _parsed[name]


def raw_counts(tarball: Path) -> tuple[Counter[str], int, set[str]]:
    """(files per top folder, files with >= 1 technique tag, distinct technique ids)."""
    folders: Counter[str] = Counter()
    with_technique = 0
    ids: set[str] = set()
    with tarfile.open(tarball) as tar:
        for member in tar:
            top = member.name.split("/")[0]
            if member.isfile() and top in SCOPE and member.name.endswith(".yml"):
                folders[top] += 1
                fh = tar.extractfile(member)
                found = {
                    t.decode().upper() for t in TAG_TECHNIQUE.findall(fh.read() if fh else b"")
                }
                with_technique += bool(found)
                ids |= found
    return folders, with_technique, ids


def raw_member(tarball: Path, path: str) -> bytes:
    with tarfile.open(tarball) as tar:
        fh = tar.extractfile(path)
        assert fh is not None
        return fh.read()


@pytest.mark.parametrize(
    ("name", "rules", "with_technique", "distinct"),
    [("sigma-attack18", 4002, 3518, 408), ("sigma", 4039, 3556, 414)],
)
@pytest.mark.integration  # reads a whole real release or catalog
def test_real_catalog_counts_match_raw_tarball(
    catalog_dir: Path, limits: Limits, name: str, rules: int, with_technique: int, distinct: int
) -> None:
    tarball = catalog_dir / f"{name}-rules.tar.gz"
    folders, raw_with, raw_ids = raw_counts(tarball)
    cat = parse_real(catalog_dir, name, limits)

    assert (sum(folders.values()), raw_with, len(raw_ids)) == (rules, with_technique, distinct)
    assert len(cat.rules) == rules
    assert cat.files_read == rules
    assert sum(1 for r in cat.rules if r.techniques) == with_technique
    got_ids = {t.upper().removeprefix("ATTACK.") for r in cat.rules for t in r.techniques}
    assert got_ids == raw_ids
    assert Counter(r.extra["folder"] for r in cat.rules) == folders
    assert cat.issues == []


def test_sniff_claims_sigma_only(catalog_dir: Path, limits: Limits) -> None:
    sigma = open_source(catalog_dir / "sigma-attack18-rules.tar.gz", limits)
    xp = open_source(catalog_dir / "open-xp-rules-rules.tar.gz", limits)
    assert (SigmaImporter().sniff(sigma), MaxPatrolXPImporter().sniff(sigma)) == (True, False)
    assert SigmaImporter().sniff(xp) is False
    one = source_from_bytes("m.yml", raw_member(sigma_tar(catalog_dir), MIMIKATZ), limits)
    assert SigmaImporter().sniff(one) is True
    assert SigmaImporter().sniff(source_from_bytes("x.yml", b"title: x\nfoo: 1\n", limits)) is False


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig", "utf-32"])
def test_auto_detection_reads_a_rule_in_any_yaml_encoding(
    catalog_dir: Path, limits: Limits, encoding: str
) -> None:
    """A real rule re-encoded: auto-detection said "cannot tell the catalog format" for UTF-16."""
    from app.catalog.registry import detect

    text = raw_member(sigma_tar(catalog_dir), MIMIKATZ).decode()
    source = source_from_bytes("m.yml", text.encode(encoding), limits)
    assert detect(source).format_id == "sigma"
    (rule,) = SigmaImporter().parse(source, limits).rules
    assert rule.title == yaml.safe_load(text)["title"]


def sigma_tar(catalog_dir: Path) -> Path:
    return catalog_dir / "sigma-attack18-rules.tar.gz"


def test_rule_fields_from_raw_file(catalog_dir: Path, limits: Limits) -> None:
    raw = yaml.safe_load(raw_member(sigma_tar(catalog_dir), MIMIKATZ))
    rule = next(
        r for r in parse_real(catalog_dir, "sigma-attack18", limits).rules if r.path == MIMIKATZ
    )
    assert rule.rule_id == raw["id"] == "a642964e-bead-4bed-8910-1bb4d63e3b4d"
    assert rule.title == rule.name == raw["title"]
    assert rule.raw_tags == raw["tags"]
    assert rule.techniques == [t for t in raw["tags"] if t.startswith("attack.t")]
    assert rule.techniques[0] == "attack.t1003.001"
    assert rule.tactics == ["attack.credential-access"]
    assert rule.log_sources == [{"product": "windows", "category": "process_creation"}]
    assert rule.platforms == ["Windows"]
    assert (rule.severity, rule.status, rule.enabled) == (raw["level"], "test", True)
    assert rule.references == raw["references"]
    assert (rule.line, rule.extra["folder"], rule.extra["date"]) == (1, "rules", "2019-10-22")
    assert rule.extra["author"] == raw["author"]


def test_legacy_multi_document_rule(catalog_dir: Path, limits: Limits) -> None:
    docs = list(yaml.safe_load_all(raw_member(sigma_tar(catalog_dir), APT29)))
    rule = next(
        r for r in parse_real(catalog_dir, "sigma-attack18", limits).rules if r.path == APT29
    )
    assert rule.title == docs[0]["title"]
    assert rule.rule_id == docs[1]["id"]  # only the second document states the id
    assert rule.techniques == ["attack.t1050", "attack.t1543.003"]
    assert rule.tactics == ["attack.persistence"]
    assert rule.extra["attack_other_tags"] == ["attack.g0016"]
    assert rule.log_sources == [
        {"product": "windows", "service": "system"},
        {"product": "windows", "category": "process_creation"},
    ]
    assert (rule.status, rule.enabled, rule.extra["yaml_documents"]) == ("unsupported", False, 2)


def test_agrees_with_normalized_file(catalog_dir: Path, limits: Limits) -> None:
    records = orjson.loads(gzip.decompress((catalog_dir / "sigma.normalized.json.gz").read_bytes()))
    rules = {r.path: r for r in parse_real(catalog_dir, "sigma", limits).rules}
    assert sorted(rules) == [rec["path"] for rec in records]
    for rec in records:
        rule = rules[rec["path"]]
        strip = [t.removeprefix("attack.") for t in rule.techniques]
        assert strip == rec["techniques"], rec["path"]
        assert [t.removeprefix("attack.") for t in rule.tactics] == rec["tactics"], rec["path"]
        assert (rule.title, rule.severity, rule.status) == (
            rec["title"],
            rec["level"],
            rec["status"],
        )
        assert rule.rule_id == (rec["id"] or docs_id_fallback(rec["path"]))
        assert rule.platforms == [PLATFORMS.get(p, p) for p in rec["platforms"]], rec["path"]


def docs_id_fallback(path: str) -> str:
    """The normalized file leaves APT29's id null; the importer takes it from document 2."""
    assert path == APT29
    return "c069f460-2b87-4010-8dcf-e45bab362624"


GOOD = """title: Good rule
id: 11111111-0000-0000-0000-000000000001
status: test
description: Finds things
author: Someone
date: 2024-01-02
tags:
    - attack.Execution
    - attack.T1059.001
    - attack.credential_access
    - attack.ta0002
    - attack.s0002
    - cve.2021-1675
logsource:
    product: linux
    category: process_creation
detection:
    sel:
        Image|endswith: /bash
    condition: sel
level: high
"""
NO_TAGS = """title: No tags
id: 11111111-0000-0000-0000-000000000002
status: deprecated
logsource: {product: windows, service: security}
detection: {sel: {EventID: 4624}, condition: sel}
level: low
"""
BROKEN = """title: Broken
id: 11111111-0000-0000-0000-000000000003
logsource:
    product: windows
detection:
    sel: [unclosed
    condition: sel
"""
DUPLICATE = GOOD.replace("title: Good rule", "title: Copy")
NO_ID = NO_TAGS.replace("id: 11111111-0000-0000-0000-000000000002\n", "")


def test_hand_made_tree_reports_problems(
    make_tree: Callable[[dict[str, str]], Path], limits: Limits
) -> None:
    root = make_tree(
        {
            "rules/linux/good.yml": GOOD,
            "rules/windows/no_tags.yml": NO_TAGS,
            "rules/windows/broken.yml": BROKEN,
            "unsupported/copy.yml": DUPLICATE,
            "deprecated/no_id.yaml": NO_ID,
            "tests/not_a_rule.yml": "foo: bar\n",
            "README.md": "# readme\n",
        }
    )
    cat = SigmaImporter().parse(open_source(root, limits), limits)

    rules = {r.path: r for r in cat.rules}
    assert sorted(rules) == [
        "deprecated/no_id.yaml",
        "rules/linux/good.yml",
        "rules/windows/no_tags.yml",
    ]
    assert cat.files_read == 5
    good = rules["rules/linux/good.yml"]
    assert good.techniques == ["attack.T1059.001"]
    assert good.tactics == ["attack.Execution", "attack.credential_access", "attack.ta0002"]
    assert good.extra["attack_other_tags"] == ["attack.s0002"]
    assert good.extra["other_tags"] == ["cve.2021-1675"]
    assert (good.platforms, good.extra["date"]) == (["Linux"], "2024-01-02")
    no_tags = rules["rules/windows/no_tags.yml"]
    assert (no_tags.techniques, no_tags.raw_tags, no_tags.enabled) == ([], [], False)
    assert no_tags.log_sources == [{"product": "windows", "service": "security"}]
    assert rules["deprecated/no_id.yaml"].rule_id == "deprecated/no_id.yaml"

    by_file = {(i.location.file if i.location else None, i.severity): i for i in cat.issues}
    assert len(cat.issues) == 3
    broken = by_file[("rules/windows/broken.yml", "error")]
    unclosed = 1 + BROKEN.splitlines().index("    sel: [unclosed")  # where the list starts
    assert broken.location is not None and broken.location.line == unclosed
    dup = by_file[("unsupported/copy.yml", "error")]
    assert "rules/linux/good.yml" in dup.message and "unsupported/copy.yml" in dup.message
    assert dup.location is not None and (dup.location.line, dup.location.field) == (2, "id")
    no_id = by_file[("deprecated/no_id.yaml", "warning")]
    assert no_id.location is not None and no_id.location.field == "id"


def test_users_own_folder_takes_only_rule_files(
    make_tree: Callable[[dict[str, str]], Path], limits: Limits
) -> None:
    root = make_tree(
        {
            "mine/a.yaml": GOOD,
            "mine/b.yml": NO_TAGS,
            "config/pipeline.yml": "name: pipeline\ntransformations: []\n",
            "config/titled.yml": "title: not a rule\nvalues: [1]\n",
        }
    )
    source = open_source(root, limits)
    assert SigmaImporter().sniff(source) is True
    cat = SigmaImporter().parse(source, limits)
    assert [r.path for r in cat.rules] == ["mine/a.yaml", "mine/b.yml"]
    assert (cat.issues, cat.files_read) == ([], 2)
    assert "folder" not in cat.rules[0].extra


def test_archive_with_top_folder_and_single_file(tmp_path: Path, limits: Limits) -> None:
    archive = tmp_path / "sigma-master.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in (("sigma-master/rules/a.yml", GOOD), ("sigma-master/tests/t.yml", GOOD)):
            src = tmp_path / "member"
            src.write_text(text)
            tar.add(src, arcname=name)
    cat = SigmaImporter().parse(open_source(archive, limits), limits)
    assert [(r.path, r.extra["folder"]) for r in cat.rules] == [
        ("sigma-master/rules/a.yml", "rules")
    ]

    single = source_from_bytes("upload.yml", NO_TAGS.encode(), limits)
    assert SigmaImporter().sniff(single) is True
    one = SigmaImporter().parse(single, limits)
    assert [(r.rule_id, r.path, r.severity) for r in one.rules] == [
        ("11111111-0000-0000-0000-000000000002", "upload.yml", "low")
    ]


def test_alias_bomb_is_an_issue_not_a_crash(
    make_tree: Callable[[dict[str, str]], Path], limits: Limits
) -> None:
    levels = "abcdefghijkl"
    bomb = (
        "a: &a [x, x]\n"
        + "".join(
            f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in itertools.pairwise(levels)
        )
        + "title: bomb\nlogsource: {product: windows}\ndetection: {condition: l}\n"
    )
    root = make_tree({"rules/bomb.yml": bomb, "rules/good.yml": GOOD})
    cat = SigmaImporter().parse(open_source(root, limits), limits)
    assert [r.path for r in cat.rules] == ["rules/good.yml"]
    assert [(i.location.file if i.location else None, i.severity) for i in cat.issues] == [
        ("rules/bomb.yml", "error")
    ]

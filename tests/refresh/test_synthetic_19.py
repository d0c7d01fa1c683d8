"""An ATT&CK-19-like release (tests/refresh/synthetic.py): a retired tactic, two new ones,
renumbered and split techniques. Ingest, diff, catalog upgrade, coverage and layers handle it
because nothing in app/ knows one release's tactics or technique ids (checked at the end)."""

from __future__ import annotations

import ast
import gzip
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from app.attack import service as attack_service
from app.attack.ingest import ingest_sources
from app.catalog import service as catalog_service
from app.catalog.tables import Rule, RuleTechnique
from app.catalog.upgrade import upgrade_catalog
from app.core.config import Limits, Settings
from app.core.db import make_engine
from app.core.errors import InvalidInput
from app.coverage import service as coverage_service
from app.models import init_db
from app.refresh.impact import release_diff
from app.refresh.models import ReleaseDiff
from app.technique_page.attack_side import attack_side
from tests import rawdata
from tests.conftest import CATALOG_DIR, ROOT
from tests.refresh.synthetic import (
    IMPAIRMENT,
    RETIRED,
    STEALTH,
    VERSION,
    Synthetic,
    build,
)

R18 = "enterprise-attack-18.1.json.gz"
TECHNIQUE = re.compile(r"t(\d{4})(?:[./_](\d{3}))?", re.IGNORECASE)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Synthetic:
    return build(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def base(
    catalog_sqlite_file: Path, synthetic: Synthetic, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Every shared catalog (validated against 18.1) plus the synthetic 19.0 release."""
    path = tmp_path_factory.mktemp("s19") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, path)
    engine = make_engine(f"sqlite:///{path}")
    [outcome] = ingest_sources(engine, [str(synthetic.path)], limits=Limits(), version=VERSION)
    assert (outcome.domain, outcome.version, outcome.status) == ("enterprise", "19.0", "loaded")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def engine(base: Path) -> Iterator[Engine]:
    e = make_engine(f"sqlite:///{base}")
    yield e
    e.dispose()


@pytest.fixture
def writable(base: Path, settings: Settings, tmp_path: Path) -> Iterator[tuple[Engine, Settings]]:
    target = tmp_path / "s19.sqlite"
    shutil.copy(base, target)
    s = settings.model_copy(update={"database_url": f"sqlite:///{target}"})
    e = make_engine(s.database_url)
    yield e, s
    e.dispose()


@pytest.fixture(scope="module")
def diff(engine: Engine) -> ReleaseDiff:
    with Session(engine) as session:
        return release_diff(
            session,
            domain="enterprise",
            from_version="18.1",
            to_version=VERSION,
            catalogs=["sigma-attack18"],
        )


def fold(text: str) -> str | None:
    m = TECHNIQUE.search(text)
    return None if m is None else f"T{m.group(1)}" + (f".{m.group(2)}" if m.group(2) else "")


def normalized(name: str) -> list[dict[str, object]]:
    with gzip.open(CATALOG_DIR / f"{name}.normalized.json.gz", "rt", encoding="utf-8") as fh:
        records: list[dict[str, object]] = json.load(fh)
    return records


# ---- ingest --------------------------------------------------------------------------------


def test_ingest_needs_the_version_and_places_the_new_tactics(
    synthetic: Synthetic, engine: Engine, tmp_path: Path
) -> None:
    empty = make_engine(f"sqlite:///{tmp_path / 'e.sqlite'}")
    init_db(empty)
    with pytest.raises(InvalidInput, match="pass --version"):
        ingest_sources(empty, [str(synthetic.path)], limits=Limits())
    empty.dispose()

    with Session(engine) as session:
        release = attack_service.get_release(session, version=VERSION)
        assert release.version_key == 19000
        active18 = len(rawdata.active_techniques(R18))
        assert release.technique_count == (
            active18 + len(synthetic.added) - len(synthetic.revoked) - len(synthetic.deprecated)
        )
        tactics = attack_service.list_tactics(session, release=release)
        assert [t.shortname for t in tactics] == synthetic.matrix
        assert RETIRED not in synthetic.matrix and {STEALTH, IMPAIRMENT} <= set(synthetic.matrix)
        page = attack_side(session, releases=[release], attack_id="T1685.005")
        assert page.parent is not None and page.parent.id == "T1685"
        assert page.tactics == [IMPAIRMENT]
        old = attack_side(session, releases=[release], attack_id="T1562")
        assert old.revoked and old.revoked_by is not None and old.revoked_by.id == "T1685"
        # relationships moved with the technique: its detection strategy and mitigations
        new = attack_side(session, releases=[release], attack_id="T1686")
        was = attack_side(
            session,
            releases=[attack_service.get_release(session, version="18.1")],
            attack_id="T1562.004",
        )
        assert [s.id for s in new.detection_strategies] == [s.id for s in was.detection_strategies]
        assert [m.id for m in new.mitigations] == [m.id for m in was.mitigations] != []


# ---- diff ----------------------------------------------------------------------------------


def test_diff_reports_the_plan(synthetic: Synthetic, diff: ReleaseDiff) -> None:
    t = diff.techniques
    assert sorted(x.id or "" for x in t.added) == sorted(synthetic.added)
    assert {r.id: r.replacement for r in t.revoked} == synthetic.revoked
    # the 1:N split: the technique to one id, its sub-techniques to several
    split = {r.id: r.replacement for r in t.revoked if r.id.startswith("T1562")}
    assert split["T1562"] == split["T1562.001"] == "T1685"
    assert (split["T1562.004"], split["T1562.010"]) == ("T1686", "T1689")
    assert {r.id: r.replacement for r in t.revoked}["T1070.001"] == "T1685.005"
    assert [x.id for x in t.deprecated] == synthetic.deprecated
    assert {x.id: (x.added, x.removed) for x in t.tactics_changed} == {
        tid: ([p for p in new if p not in old], [p for p in old if p not in new])
        for tid, (old, new) in synthetic.moved.items()
    }
    assert len(t.tactics_changed) == 201
    assert [x.shortname for x in diff.tactics.added] == [IMPAIRMENT, STEALTH]
    assert [(x.shortname, x.id) for x in diff.tactics.retired] == [(RETIRED, "TA0005")]
    assert diff.tactics.order_after == synthetic.matrix
    nothing = ("renamed", "platforms_changed", "subtechnique_changed", "description_changed")
    assert all(diff.counts[f"techniques_{k}"] == 0 for k in nothing)
    assert all(
        v == 0 for k, v in diff.counts.items() if not k.startswith(("techniques", "tactics"))
    )


def test_diff_impact_on_sigma_attack18(synthetic: Synthetic, diff: ReleaseDiff) -> None:
    """Stale mappings equal what the raw catalog and the plan say, suggestions included."""
    raw18 = {rawdata.ext_id(o): o for o in rawdata.objects(R18) if o["type"] == "attack-pattern"}
    gone = set(synthetic.revoked) | set(synthetic.deprecated)
    stale_ids = gone | {t for t, o in raw18.items() if not rawdata.active(o)}
    want = {
        (str(r["id"]), tid)
        for r in normalized("sigma-attack18")
        for tid in {fold(str(w)) for w in r["techniques"]}
        if tid in stale_ids
    }
    [impact] = diff.catalogs
    got = {(s.rule_id, s.stale_id) for s in impact.stale}
    # one legacy multi-document file has no id in the extractor's record; the importer names it
    assert len(got) == len(want)
    assert {x for x in got if x[0] in {r for r, _ in want}} == {x for x in want if x[0] != "None"}
    assert impact.stale_rules == len({r for r, _ in want})
    for s in impact.stale:
        if s.stale_id in synthetic.revoked:
            assert (s.suggested, s.changed_in_this_diff) == (synthetic.revoked[s.stale_id], True)
        elif s.stale_id in synthetic.deprecated:
            assert (s.status, s.suggested, s.changed_in_this_diff) == ("deprecated", None, True)
        else:
            assert not s.changed_in_this_diff
    tactics = {g.tactic: g for g in impact.by_tactic}
    assert tactics[RETIRED].before is not None and tactics[RETIRED].after is None
    for new in (STEALTH, IMPAIRMENT):
        assert tactics[new].before is None and tactics[new].after is not None
    assert list(tactics).index(STEALTH) == list(tactics).index(RETIRED) - 2
    total = len(rawdata.active_techniques(R18)) + len(synthetic.added) - len(gone)
    assert impact.coverage_after.total == total


# ---- upgrade, coverage, layers ---------------------------------------------------------------


def rule_ids(engine: Engine, catalog: str) -> list[str]:
    with Session(engine) as session:
        cid = next(i for i, n in catalog_service.catalog_ids(session, [catalog]).items())
        return sorted(session.exec(select(Rule.rule_id).where(Rule.catalog_id == cid)).all())


def rows(engine: Engine, catalog: str) -> list[RuleTechnique]:
    with Session(engine) as session:
        cid = next(iter(catalog_service.catalog_ids(session, [catalog])))
        return list(
            session.exec(
                select(RuleTechnique)
                .where(RuleTechnique.catalog_id == cid)
                .order_by(col(RuleTechnique.id))
            ).all()
        )


def covered(engine: Engine, s: Settings, catalog: str) -> set[str]:
    with Session(engine) as session:
        release = attack_service.get_release(session, version=VERSION)
        scope = coverage_service.make_scope(session, release=release, catalogs=[catalog])
        return {
            r.id
            for r in coverage_service.technique_rows(session, scope=scope, weights=s.coverage)
            if r.covered
        }


def test_upgrade_sigma_attack18_to_19(
    synthetic: Synthetic, writable: tuple[Engine, Settings]
) -> None:
    engine, s = writable
    ids_before, before = rule_ids(engine, "sigma-attack18"), rows(engine, "sigma-attack18")
    assert "T1685" not in covered(engine, s, "sigma-attack18")
    report = upgrade_catalog(engine, s, name="sigma-attack18", version=VERSION)
    after = rows(engine, "sigma-attack18")
    assert rule_ids(engine, "sigma-attack18") == ids_before and report.rules == len(ids_before)
    assert [(m.id, m.written) for m in after] == [(m.id, m.written) for m in before]
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b.technique != a.technique]
    assert (
        report.rewritten == len(moved) == sum(1 for b in before if b.technique in synthetic.revoked)
    )
    for b, a in moved:
        assert (a.technique, a.original) == (synthetic.revoked[b.technique or ""], b.technique)
        assert a.outcome == "remapped"
    deprecated = [a for a in after if a.technique in synthetic.deprecated]
    assert deprecated and all(a.outcome == "deprecated" for a in deprecated)
    assert {m.written for m in report.not_placed} >= {a.written for a in deprecated}
    stored = Counter(t for r in _rules(engine, "sigma-attack18") for t in r)
    assert report.unknown_tactics[RETIRED] == stored[RETIRED] > 1000
    assert {"T1685", "T1686", "T1689", "T1685.005"} <= covered(engine, s, "sigma-attack18")


def _rules(engine: Engine, catalog: str) -> list[list[str]]:
    with Session(engine) as session:
        cid = next(iter(catalog_service.catalog_ids(session, [catalog])))
        return [list(t) for t in session.exec(select(Rule.tactics).where(Rule.catalog_id == cid))]


def test_upgrade_places_sigma_rules_already_written_for_19(
    synthetic: Synthetic, writable: tuple[Engine, Settings]
) -> None:
    """The newest Sigma snapshot speaks ATT&CK 19; its ids the synthetic release has get placed."""
    engine, s = writable
    ids_before = rule_ids(engine, "sigma")
    report = upgrade_catalog(engine, s, name="sigma", version=VERSION)
    want = sum(
        1
        for r in normalized("sigma")
        for tid in {fold(str(w)) for w in r["techniques"]}
        if tid in synthetic.added
    )
    assert report.newly_placed == want > 100
    assert rule_ids(engine, "sigma") == ids_before


def test_layers_on_19(synthetic: Synthetic, writable: tuple[Engine, Settings]) -> None:
    layer_service = pytest.importorskip("app.layer.service")
    engine, s = writable
    upgrade_catalog(engine, s, name="sigma-attack18", version=VERSION)
    with Session(engine) as session:
        release = attack_service.get_release(session, version=VERSION)
        scope = coverage_service.make_scope(session, release=release, catalogs=["sigma-attack18"])
        layer = layer_service.build_layer(
            session,
            scope=scope,
            req=layer_service.LayerRequest(kind="coverage"),
            weights=s.coverage,
        )
        entries = {e.techniqueID: e for e in layer.techniques}
        assert {"T1685", "T1686", "T1689"} <= set(entries)
        assert not {e.tactic for e in layer.techniques} & {RETIRED}
        columns = [c.shortname for c in layer_service.matrix(session, scope=scope)]
        assert columns == synthetic.matrix
        changes = layer_service.build_layer(
            session,
            scope=scope,
            req=layer_service.LayerRequest(kind="diff", from_version="18.1"),
            weights=s.coverage,
        )
        assert set(synthetic.added) <= {e.techniqueID for e in changes.techniques}


# ---- nothing in app/ names one release's tactics or technique ids ------------------------


def test_no_release_specific_literals_in_app() -> None:
    """Every string constant in app/ (docstrings aside) is checked against the tactic names,
    shortnames and ids of 18.1 and the synthetic 19.0, and against the technique-id form."""
    tactic_words = {"stealth", "defense-impairment", "TA0112", "TA0113"}
    for o in rawdata.objects(R18):
        if o["type"] == "x-mitre-tactic":
            tactic_words |= {o["x_mitre_shortname"], o["name"], rawdata.ext_id(o) or ""}
    ids = re.compile(r"^(T\d{4}(\.\d{3})?|TA\d{4})$")
    found = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and (node.value in tactic_words or ids.match(node.value))
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert found == []

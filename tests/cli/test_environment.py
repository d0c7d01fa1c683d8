"""`kbmap env` and `--env` as a user runs them: a real process on a copy of the database with the
shared catalogs, the DeTT&CT endpoints sample imported unchanged; expected values from the raw
sample and the raw ATT&CK bundle, or from the coverage service on the same scope."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.config import Settings
from app.core.db import make_engine, read_session
from tests.cli.test_attack import kbmap
from tests.conftest import ROOT, attack_file

pytestmark = pytest.mark.integration  # runs kbmap in a subprocess on a database it copies

PEERS_DIR = ROOT.parent / "shared" / "peers" / "dettect"
SAMPLE = PEERS_DIR / "data-sources-endpoints.yaml"
CATALOG = "sigma-attack18"
STATES = ("effective", "rule_without_telemetry", "telemetry_only", "blind", "unknown")


def raw_sample() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    return data


def sample_name() -> str:
    """DeTT&CT's `name`, slugged as an API path takes it ("Data sources sample")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw_sample()["name"]).strip("-._")


def raw_components() -> set[str]:
    """Lower-cased names of the data components of enterprise 18.1, read from the bundle."""
    with gzip.open(attack_file("enterprise-attack-18.1.json.gz")) as fh:
        bundle = json.load(fh)
    return {
        o["name"].lower()
        for o in bundle["objects"]
        if o["type"] == "x-mitre-data-component" and not o.get("revoked")
    }


def raw_entries() -> dict[str, set[str]]:
    """System name → the data source names the sample applies to it (`all`: every system)."""
    raw = raw_sample()
    systems = [s["applicable_to"] for s in raw["systems"]]
    out: dict[str, set[str]] = {s: set() for s in systems}
    for ds in raw["data_sources"]:
        for entry in ds["data_source"]:
            applies = entry["applicable_to"]
            for s in systems if "all" in applies else applies:
                out[s].add(ds["data_source_name"])
    return out


@pytest.fixture(scope="module")
def imported(
    catalog_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """A copy of the catalog database with the sample imported through the CLI, once: its URL
    and what the import printed. Tests that write use their own copy of it."""
    path = tmp_path_factory.mktemp("env") / "kbmap.sqlite"
    shutil.copy(catalog_sqlite_file, path)
    url = f"sqlite:///{path}"
    out = kbmap("env", "import", str(SAMPLE), db=url, check=True)
    return url, out.stdout


@pytest.fixture
def db(imported: tuple[str, str]) -> str:
    return imported[0]


def copy_of(db: str, tmp_path: Path) -> str:
    path = tmp_path / "copy.sqlite"
    shutil.copy(db.removeprefix("sqlite:///"), path)
    return f"sqlite:///{path}"


def cli_json(*args: str, db: str) -> Any:
    return json.loads(kbmap(*args, "--json", db=db, check=True).stdout)


def test_import_reports_the_sample_and_what_it_could_not_place(imported: tuple[str, str]) -> None:
    name, entries, comps = sample_name(), raw_entries(), raw_components()
    out = imported[1]
    first, counts = out.splitlines()[:2]
    assert first == f"{name}: imported (dettect), placed in ATT&CK enterprise 18.1"
    unplaced = {n for names in entries.values() for n in names if n.lower() not in comps}
    assert unplaced == {"Web [DeTT&CT data source]", "Internal DNS [DeTT&CT data source]"}
    n_entries = sum(len(v) for v in entries.values())
    placed = sum(1 for v in entries.values() for n in v if n.lower() in comps)
    assert counts == (
        f"systems: {len(entries)} · log sources: {n_entries} · placed: {placed} · data "
        f"components collected: {len({n.lower() for v in entries.values() for n in v} & comps)}"
        f" · unplaced: {len(unplaced)}"
    )
    for written in unplaced:  # reported with the reason, never dropped
        assert re.search(rf"{re.escape(written)}.*not an ATT&CK data component", out)


def test_list_and_show(db: str) -> None:
    entries, comps = raw_entries(), raw_components()
    (brief,) = cli_json("env", "list", db=db)
    assert brief["name"] == sample_name() and brief["format_id"] == "dettect"
    assert (brief["domain"], brief["attack_version"]) == ("enterprise", "18.1")
    assert brief["systems"] == len(entries)
    shown = cli_json("env", "show", sample_name(), db=db)
    platforms = {s["applicable_to"]: s["platform"] for s in raw_sample()["systems"]}
    assert {s["name"]: s["platforms"] for s in shown["systems"]} == platforms
    for s in shown["systems"]:
        assert {ls["written"] for ls in s["log_sources"]} == entries[s["name"]]
        for ls in s["log_sources"]:  # a name of the release is its own data component
            placed = [ls["written"].lower()] if ls["written"].lower() in comps else []
            assert [d.lower() for d in ls["data_components"]] == placed
    text = kbmap("env", "show", sample_name(), db=db, check=True).stdout
    assert "Windows workstations" in text and "Firewall rule modification" in text


def service_answer(db: str, fn: str, **kw: Any) -> Any:
    """The coverage service's answer on the same scope as `--catalog CATALOG --env NAME`."""
    from app.attack import service as attack_service
    from app.coverage import service as coverage_service

    s = Settings(database_url=db, environment="test")
    engine = make_engine(db)
    try:
        with read_session(engine) as session:
            release = attack_service.get_release(session, domain="enterprise", version="18.1")
            scope = coverage_service.make_scope(
                session,
                release=release,
                catalogs=[CATALOG],
                environment=sample_name(),
                kb_dir=s.kb_dir,
            )
            return getattr(coverage_service, fn)(session, scope=scope, weights=s.coverage, **kw)
    finally:
        engine.dispose()


def test_coverage_env_is_the_service_answer(db: str) -> None:
    got = cli_json("coverage", "-c", CATALOG, "--env", sample_name(), db=db)
    want = service_answer(db, "summary").model_dump(mode="json")
    assert got == want
    eff = got["effective"]
    assert eff["environment"] == sample_name()
    assert sum(eff["all"][k] for k in STATES) == eff["all"]["total"] == got["all"]["total"]
    assert 0 < eff["all"]["effective"] <= got["all"]["covered"]  # telemetry only takes away
    text = kbmap("coverage", "-c", CATALOG, "--env", sample_name(), db=db, check=True).stdout
    assert f"effective coverage in environment {sample_name()}" in text
    counts = " ".join(str(eff["all"][k]) for k in ("total", *STATES))
    assert re.search(r"\ball\b[ │]+" + r"[ │]+".join(counts.split()), text)
    for system in raw_entries():
        assert system in text


def test_gaps_env_show_state_and_missing_log_sources(db: str) -> None:
    page = cli_json("gaps", "-c", CATALOG, "--env", sample_name(), "--limit", "1000", db=db)
    rows = service_answer(db, "technique_rows")
    not_effective = {r.id for r in rows if r.state != "effective"}
    assert {g["id"] for g in page["items"]} == not_effective
    assert page["total"] == len(not_effective)
    by_id = {r.id: r for r in rows}
    for g in page["items"]:
        assert g["state"] == by_id[g["id"]].state
        assert g["missing_log_sources"] == by_id[g["id"]].missing_log_sources
    text = kbmap("gaps", "-c", CATALOG, "--env", sample_name(), "--limit", "5", db=db).stdout
    assert text.count("state: ") == 5
    first = page["items"][0]
    assert f"state: {first['state']}" in text


def test_env_next_top_item_keeps_its_promise(db: str, tmp_path: Path) -> None:
    page = cli_json("env", "next", sample_name(), "-c", CATALOG, "--limit", "3", db=db)
    want = service_answer(db, "collect_next", limit=3).model_dump(mode="json")
    assert page == want
    top = page["items"][0]
    assert top["rank"] == 1 and top["techniques_gained"] == len(top["techniques"]) > 0
    assert top["data_component"].lower() not in {n.lower() for n in raw_entries()[top["system"]]}
    before = cli_json("coverage", "-c", CATALOG, "--env", sample_name(), db=db)
    # onboard it: the sample plus that data component on that system, re-imported by name
    raw = raw_sample()
    entry = dict(raw["data_sources"][0]["data_source"][0], applicable_to=[top["system"]])
    raw["data_sources"].append({"data_source_name": top["data_component"], "data_source": [entry]})
    onboarded = tmp_path / "onboarded.yaml"
    onboarded.write_text(yaml.safe_dump(raw, sort_keys=False))
    url = copy_of(db, tmp_path)
    out = kbmap("env", "import", str(onboarded), "--name", sample_name(), db=url, check=True)
    assert out.stdout.startswith(f"{sample_name()}: replaced (dettect)")
    after = cli_json("coverage", "-c", CATALOG, "--env", sample_name(), db=url)
    gained = after["effective"]["all"]["effective"] - before["effective"]["all"]["effective"]
    assert gained == top["techniques_gained"]
    text = kbmap("env", "next", sample_name(), "-c", CATALOG, "--limit", "1", db=db).stdout
    assert top["system"] in text and top["data_component"] in text
    assert "showing 1 of" in text


def test_env_scope_defaults_to_the_environments_domain(db: str, tmp_path: Path) -> None:
    ics = PEERS_DIR / "data-sources-ics.yaml"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", yaml.safe_load(ics.read_text())["name"])
    url = copy_of(db, tmp_path)
    kbmap("env", "import", str(ics), db=url, check=True)
    got = cli_json("coverage", "--env", name, db=url)
    assert (got["domain"], got["effective"]["environment"]) == ("ics", name)
    (listed,) = [e for e in cli_json("env", "list", db=url) if e["name"] == name]
    assert listed["domain"] == "ics"
    page = cli_json("env", "next", name, db=url)
    text = kbmap("env", "next", name, db=url, check=True).stdout
    assert f"on ATT&CK ics {got['version']}" in text
    # the shared catalogs map enterprise techniques only: no ICS rule waits on telemetry
    assert page["total"] == 0 and got["all"]["covered"] == 0
    assert "nothing: no rule in scope waits" in text


@pytest.mark.parametrize(
    "args",
    [
        ("coverage", "--env", "nope"),
        ("gaps", "--env", "nope"),
        ("layer", "coverage", "--env", "nope"),
        ("env", "next", "nope"),
        ("env", "show", "nope"),
        ("env", "delete", "nope"),
    ],
)
def test_unknown_environment_is_one_line_listing_the_known(db: str, args: tuple[str, ...]) -> None:
    proc = kbmap(*args, db=db)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"kbmap: environment: no environment named 'nope'; known: {sample_name()}"
    ]
    assert proc.stdout == ""


def test_delete_is_audited_and_leaves_none(db: str, tmp_path: Path) -> None:
    url = copy_of(db, tmp_path)
    out = kbmap("env", "delete", sample_name(), db=url, check=True)
    assert out.stdout.strip() == f"deleted environment {sample_name()}"
    assert cli_json("env", "list", db=url) == []
    events = cli_json("audit", db=url)["items"]
    done = [(e["action"], e["target"], e["outcome"]) for e in events]
    assert ("env delete", sample_name(), "ok") in done
    assert ("env import", sample_name(), "ok") in done
    again = kbmap("env", "delete", sample_name(), db=url)
    assert again.returncode == 1
    assert again.stderr.splitlines() == [
        f"kbmap: environment: no environment named '{sample_name()}'; known: none "
        "(kbmap env import FILE)"
    ]

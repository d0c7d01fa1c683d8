"""Log sources -> ATT&CK data components / analytic keys, checked against the real releases.

ATT&CK 18.1 is read here with gzip + json, independently of the code under test, and expected
values come from it (which component 18.1 cites for Security 4624, which analytics exist), not
from the YAML. The link-rate floors use the shared catalogs' normalized records as input: the
code under test is the mapper, not the importers.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.catalog import registry
from app.catalog.telemetry import (
    FormatTelemetry,
    Hit,
    Loader,
    LogSourceMap,
    analytic_keys,
    analytic_ref_keys,
    data_components_for,
    load_log_source_map,
)
from app.core.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
ATTACK_DIR = Path(os.environ.get("KBMAP_TEST_ATTACK_DIR", SHARED / "attack"))
CATALOG_DIR = Path(os.environ.get("KBMAP_TEST_CATALOG_DIR", SHARED / "catalogs"))
TABLES = ROOT / "kb" / "mappings" / "log-sources.yaml"

SECURITY_4624 = ("WinEventLog:Security", "EventCode=4624")


def _gzip_json(path: Path) -> Any:
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    with gzip.open(path) as fh:
        return json.load(fh)


@cache
def _bundle() -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = _gzip_json(ATTACK_DIR / "enterprise-attack-18.1.json.gz")[
        "objects"
    ]
    return [o for o in objects if not o.get("revoked") and not o.get("x_mitre_deprecated")]


def _data_components() -> list[dict[str, Any]]:
    return [o for o in _bundle() if o["type"] == "x-mitre-data-component"]


def _analytic_refs() -> list[tuple[str, str]]:
    """Every (name, channel) of every 18.1 analytic's log-source references, as written."""
    return [
        (ref["name"], ref["channel"])
        for o in _bundle()
        if o["type"] == "x-mitre-analytic"
        for ref in o.get("x_mitre_log_source_references", [])
    ]


@cache
def _normalized(name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = _gzip_json(CATALOG_DIR / f"{name}.normalized.json.gz")
    return records


def _log_sources(strings: list[str]) -> list[dict[str, str]]:
    """A normalized record's "key:value" strings as the importers' dicts: Sigma's logsource
    keys form one dict per logsource, XP's "Provider:EventID" become {provider, event_id}."""
    out: list[dict[str, str]] = []
    sigma: dict[str, str] = {}
    for item in strings:
        key, _, value = item.partition(":")
        if key in ("product", "category", "service"):
            if key in sigma:
                out.append(sigma)
                sigma = {}
            sigma[key] = value
        else:
            provider, _, event_id = item.rpartition(":")
            out.append({"provider": provider, "event_id": event_id})
    return [*out, sigma] if sigma else out


@pytest.fixture(scope="module")
def table() -> LogSourceMap:
    return load_log_source_map(TABLES)


def _yaml_component_names(node: Any, key: str | None = None) -> set[str]:
    """Every data-component name in the YAML: `components` lists and event-table values."""
    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            found |= _yaml_component_names(v, str(k))
    elif isinstance(node, list) and key != "analytics":
        if all(isinstance(v, str) for v in node) and key not in ("names", "attack", "events"):
            found |= set(node)
        else:
            for v in node:
                found |= _yaml_component_names(v, key)
    return found


@pytest.mark.integration  # reads a whole real release or catalog
def test_every_component_name_exists_in_attack_18_1() -> None:
    doc = yaml.load(TABLES.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    attack_names = {o["name"] for o in _data_components()}
    named = _yaml_component_names({k: v for k, v in doc.items() if k != "components"})
    assert len(named) > 60
    assert named - attack_names == set()
    assert set(doc["components"]) == attack_names  # the generated list is current


def test_channel_attack_names_are_attack_log_source_names() -> None:
    doc = yaml.load(TABLES.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    cited = {name for name, _ in _analytic_refs()}
    cited |= {s["name"] for o in _data_components() for s in o.get("x_mitre_log_sources", [])}
    attack = {n for spec in doc["channels"].values() for n in spec.get("attack", [])}
    assert "WinEventLog:Sysmon" in attack
    assert attack - cited == set()


def test_sigma_process_creation_links_process_creation(table: LogSourceMap) -> None:
    rule = next(
        r
        for r in _normalized("sigma-attack18")
        if r["log_sources"] == ["product:windows", "category:process_creation"]
    )
    sources = _log_sources(rule["log_sources"])
    assert data_components_for(sources, table) == [
        ("Process Creation", "sigma:windows/process_creation")
    ]
    keys = analytic_keys(sources, table)
    assert keys == {
        ("WinEventLog:Sysmon", "EventCode=1"),
        ("WinEventLog:Security", "EventCode=4688"),
    }
    refs = set(_analytic_refs())
    assert keys <= refs


def test_xp_security_4624_links_the_logon_component_attack_cites(table: LogSourceMap) -> None:
    cited = {
        o["name"]
        for o in _data_components()
        if {"name": SECURITY_4624[0], "channel": SECURITY_4624[1]}
        in o.get("x_mitre_log_sources", [])
    }
    assert cited  # ATT&CK 18.1 names a component for exactly this log source
    rule = next(
        r
        for r in _normalized("open-xp-rules")
        if "Microsoft-Windows-Security-Auditing:4624" in r["log_sources"]
    )
    found = data_components_for(_log_sources(rule["log_sources"]), table)
    assert {(c, "winevent:Security/4624") for c in cited} <= set(found)
    entry = [{"provider": "Microsoft-Windows-Security-Auditing", "event_id": "4624"}]
    assert {c for c, _ in data_components_for(entry, table)} == cited


def test_analytic_key_for_security_4624_is_attacks_own_spelling(table: LogSourceMap) -> None:
    entry = [{"provider": "Microsoft-Windows-Security-Auditing", "event_id": "4624"}]
    assert analytic_keys(entry, table) == {SECURITY_4624}
    refs = _analytic_refs()
    assert SECURITY_4624 in refs  # some 18.1 analytic names exactly this pair
    # most 4624 analytics cite it inside a list ("EventCode=4624, 4648"); analytic_ref_keys
    # splits those so the same key finds them too
    expanded = [ref for ref in refs if SECURITY_4624 in analytic_ref_keys(*ref)]
    assert len(expanded) > refs.count(SECURITY_4624)
    assert ("WinEventLog:Security", "EventCode=4624, 4648") in expanded


def _explicit_pairs(node: Any) -> list[tuple[str, str]]:
    """Every [name, channel] pair listed under an `analytics` key in the YAML."""
    if isinstance(node, list):
        return [pair for item in node for pair in _explicit_pairs(item)]
    if not isinstance(node, dict):
        return []
    out: list[tuple[str, str]] = []
    for key, value in node.items():
        out += [(p[0], p[1]) for p in value] if key == "analytics" else _explicit_pairs(value)
    return out


def test_explicit_analytic_pairs_exist_in_attack_18_1() -> None:
    doc = yaml.load(TABLES.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    explicit = set(_explicit_pairs(doc))
    known = {key for ref in _analytic_refs() for key in analytic_ref_keys(*ref)}
    assert ("auditd:SYSCALL", "execve") in explicit
    assert explicit - known == set()


def test_splunk_elastic_and_canonical_spellings(table: LogSourceMap) -> None:
    def comps(entry: dict[str, str]) -> set[str]:
        return {c for c, _ in data_components_for([entry], table)}

    assert data_components_for([{"data_source": "Sysmon EventID 1"}], table) == [
        ("Process Creation", "splunk:Sysmon EventID 1")
    ]
    assert analytic_keys([{"data_source": "Windows Event Log Security 4688"}], table) == {
        ("WinEventLog:Security", "EventCode=4688")
    }
    assert "Script Execution" in comps({"data_source": "Powershell Script Block Logging 4104"})
    assert comps({"data_source": "Sysmon EventID 1"}) == comps({"data_source": "SYSMON eventid 1"})
    assert data_components_for([{"index": "logs-endpoint.events.process-*"}], table) == [
        ("Process Creation", "elastic:logs-endpoint.events.process*")
    ]
    assert "Process Creation" in comps({"data_source": "Elastic Defend"})
    text = {"text": "Microsoft-Windows-Security-Auditing:4624"}
    xp = {"provider": "Microsoft-Windows-Security-Auditing", "event_id": "4624"}
    assert data_components_for([text], table) == data_components_for([xp], table)
    assert comps({"text": "Process: Process Creation"}) == {"Process Creation"}
    assert comps({"Product": "WINDOWS", "Category": "Process_Creation"}) == {"Process Creation"}
    security = {"product": "windows", "service": "security"}
    assert ("Logon Session Creation", "sigma:windows/service/security") in data_components_for(
        [security], table
    )
    assert comps({**security, "event_id": "4625"}) == comps({**xp, "event_id": "4625"})
    assert comps({"provider": "Microsoft-Windows-Security-Auditing", "event_id": "99999"}) == set()
    assert data_components_for([], table) == []


@pytest.mark.parametrize(
    ("catalog", "floor"),
    [("sigma-attack18", 0.995), ("open-xp-rules", 0.97)],
)
def test_share_of_real_rules_linked(table: LogSourceMap, catalog: str, floor: float) -> None:
    rules = [_log_sources(r["log_sources"]) for r in _normalized(catalog) if r["log_sources"]]
    linked = sum(1 for sources in rules if data_components_for(sources, table))
    assert linked / len(rules) >= floor


def test_share_of_sigma_rules_linked_by_category(table: LogSourceMap) -> None:
    """The precise links (a Sigma category, not a whole channel) must not erode either."""
    rules = [_log_sources(r["log_sources"]) for r in _normalized("sigma-attack18")]
    precise = sum(
        1
        for sources in rules
        if any(
            key == f"sigma:{s.get('product', '*')}/{s.get('category')}"
            for s in sources
            for _, key in data_components_for([s], table)
        )
    )
    assert precise / len(rules) >= 0.75


BAD_TABLES = [
    ("- just\n- a list\n", "(top level)"),
    ("version: 1\nsigma: {categories: {windows/x: [Process Creaton]}}\n", "sigma.categories"),
    ("version: 1\nchannels: [security]\n", "channels"),
    ("version: 1\nchannels: {security: {names: [security]}}\n", "channels.security.key"),
    ("version: 1\nevents: {nowhere: {'1': [Process Creation]}}\n", "events.nowhere"),
    ("version: 1\nelastic: {indexes: {'x-*': {analytics: [[only-one]]}}}\n", "analytics"),
    ("version: 1\nsplunk: {event_prefixes: {'Sysmon EventID': sysmon}}\n", "event_prefixes"),
    ("version: 1\nunknown_section: {}\n", "(top level)"),
    ("version: 1\nchannels: {a: {key: x\n", ""),
]


@pytest.mark.parametrize(("text", "field"), BAD_TABLES)
def test_bad_structure_names_the_file(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "log-sources.yaml"
    components = "components: [Process Creation]\n" if "Creaton" in text else ""
    path.write_text(components + text, encoding="utf-8")
    with pytest.raises(InvalidInput) as exc:
        load_log_source_map(path)
    assert exc.value.location is not None
    assert exc.value.location.file == str(path)
    assert str(path) in str(exc.value)
    assert field in (exc.value.location.field or "")


def test_precise_links_win_over_whole_product_ones(table: LogSourceMap) -> None:
    """Elastic tags a process-index rule "Elastic Defend" too: the rule needs process data."""
    rule = [{"index": "logs-endpoint.events.process-*"}, {"data_source": "Elastic Defend"}]
    assert data_components_for(rule, table) == [
        ("Process Creation", "elastic:logs-endpoint.events.process*")
    ]
    alone = {c for c, _ in data_components_for(rule[1:], table)}
    assert {"Process Creation", "Module Load"} <= alone


@dataclass(frozen=True)
class _PluginSources:
    """A plugin format's own tables and matcher: `names` -> components, nothing else."""

    names: dict[str, Hit]

    @classmethod
    def load(cls, ld: Loader, value: Any, t: LogSourceMap) -> _PluginSources:
        section = ld.mapping(value, "acme", {"names"})
        return cls(ld.table(section.get("names"), "acme.names", "acme:"))

    def hits(self, e: dict[str, str], raw: dict[str, str], t: LogSourceMap) -> list[Hit]:
        hit = self.names.get(e["acme_source"])
        return [hit] if hit else []


def _plugin(path: Path) -> FormatTelemetry:
    return FormatTelemetry(frozenset({"acme_source"}), _PluginSources.load, "acme", str(path))


def test_a_plugin_brings_its_own_tables_and_matcher(tmp_path: Path) -> None:
    """A format outside kbmap links its rules through its own file and code, beside the
    built-ins, which link as before."""
    path = tmp_path / "acme.yaml"
    path.write_text("version: 1\nacme: {names: {Proc Log: [Process Creation]}}\n", "utf-8")
    table = load_log_source_map(TABLES, [*registry.telemetry(), _plugin(path)])
    assert data_components_for([{"acme_source": "PROC LOG"}], table) == [
        ("Process Creation", "acme:Proc Log")
    ]
    sigma = [{"product": "windows", "category": "process_creation"}]
    assert data_components_for(sigma, table) == data_components_for(
        sigma, load_log_source_map(TABLES)
    )


def test_a_plugins_bad_tables_name_its_own_file(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text("version: 1\nacme: {names: {Proc Log: [Process Creaton]}}\n", "utf-8")
    with pytest.raises(InvalidInput) as exc:
        load_log_source_map(TABLES, [*registry.telemetry(), _plugin(path)])
    assert exc.value.location is not None
    assert exc.value.location.file == str(path)
    assert exc.value.location.field == "acme.names.Proc Log"

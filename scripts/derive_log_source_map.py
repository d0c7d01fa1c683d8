"""One-off: derive the generated sections of kb/mappings/log-sources.yaml from ATT&CK 18.1.

What it derives (the rest of the YAML is curated by hand):
- `components`: every non-deprecated enterprise data-component name;
- `events`: for each channel in the YAML that names an ATT&CK log-source (`attack`), the event
  ids ATT&CK cites as "EventCode=..." in data components' x_mitre_log_sources and analytics'
  x_mitre_log_source_references, with the data components cited for them. An id cited alone
  ("EventCode=4624") keeps only the components it is cited alone for; an id seen only inside
  lists ("EventCode=4663, 4670, 4656") takes the components of those lists.

Usage:
  python scripts/derive_log_source_map.py            # print the derived sections
  python scripts/derive_log_source_map.py --write    # rewrite them in the YAML in place
  python scripts/derive_log_source_map.py --report   # link rates on the shared catalogs

Inputs default to ../shared/attack and ../shared/catalogs beside the project root
(KBMAP_TEST_ATTACK_DIR / KBMAP_TEST_CATALOG_DIR override).
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
YAML_PATH = ROOT / "kb" / "mappings" / "log-sources.yaml"
EVENT_CODES = re.compile(r"(?:EventCode=|,)\s*(\d+)")


def attack_dir() -> Path:
    return Path(os.environ.get("KBMAP_TEST_ATTACK_DIR", SHARED / "attack"))


def catalog_dir() -> Path:
    return Path(os.environ.get("KBMAP_TEST_CATALOG_DIR", SHARED / "catalogs"))


def load_bundle() -> list[dict[str, Any]]:
    with gzip.open(attack_dir() / "enterprise-attack-18.1.json.gz") as fh:
        objects: list[dict[str, Any]] = json.load(fh)["objects"]
    return objects


def active(obj: dict[str, Any]) -> bool:
    return not obj.get("revoked") and not obj.get("x_mitre_deprecated")


def event_ids(channel: str) -> list[str]:
    """'EventCode=4624, 4648' -> ['4624', '4648']; other channel text -> []."""
    if not channel.strip().startswith("EventCode="):
        return []
    return EVENT_CODES.findall(channel)


def derive_events(objects: list[dict[str, Any]], channels: dict[str, Any]) -> dict[str, Any]:
    """channel id -> event id -> sorted components, from the bundle's EventCode citations."""
    names = {o["id"]: o["name"] for o in objects if o["type"] == "x-mitre-data-component"}
    citations: list[tuple[str, str, str]] = []  # (log-source name, channel text, component)
    for obj in objects:
        if not active(obj):
            continue
        if obj["type"] == "x-mitre-data-component":
            for src in obj.get("x_mitre_log_sources", []):
                citations.append((src["name"], src["channel"], obj["name"]))
        elif obj["type"] == "x-mitre-analytic":
            for ref in obj.get("x_mitre_log_source_references", []):
                component = names.get(ref["x_mitre_data_component_ref"])
                if component:
                    citations.append((ref["name"], ref["channel"], component))
    alone: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    listed: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for name, channel, component in citations:
        ids = event_ids(channel)
        for event_id in ids:
            (alone if len(ids) == 1 else listed)[(name, event_id)].add(component)
    out: dict[str, Any] = {}
    for channel_id, spec in channels.items():
        table: dict[str, list[str]] = {}
        for name in spec.get("attack") or []:
            for (src, event_id), comps in sorted({**listed, **alone}.items()):
                if src != name:
                    continue
                chosen = alone.get((src, event_id)) or comps
                table[event_id] = sorted(set(table.get(event_id, [])) | chosen)
        if table:
            out[channel_id] = dict(sorted(table.items(), key=lambda kv: int(kv[0])))
    return out


def render(components: list[str], events: dict[str, Any]) -> dict[str, str]:
    comp_text = "components:\n" + "".join(f"  - {c}\n" for c in components)
    lines = ["events:"]
    for channel_id, table in events.items():
        lines.append(f"  {channel_id}:")
        for event_id, comps in table.items():
            lines.append(f'    "{event_id}": [{", ".join(comps)}]')
    return {"components": comp_text, "events": "\n".join(lines) + "\n"}


def replace_section(text: str, section: str, body: str) -> str:
    begin, end = f"# BEGIN derived {section}\n", f"# END derived {section}\n"
    head, sep, rest = text.partition(begin)
    _, sep2, tail = rest.partition(end)
    if not sep or not sep2:
        sys.exit(f"markers for {section} not found in {YAML_PATH}")
    return head + begin + body + end + tail


def normalized_log_sources(strings: list[str]) -> list[dict[str, str]]:
    """The normalized files' 'key:value' strings -> one dict per logsource (Sigma), or
    XP's 'Provider:EventID' strings -> {'provider', 'event_id'}."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for item in strings:
        key, _, value = item.partition(":")
        if key in ("product", "category", "service"):
            if key in current:
                out.append(current)
                current = {}
            current[key] = value
        else:
            provider, _, event_id = item.rpartition(":")
            out.append(
                {"provider": provider, "event_id": event_id} if provider else {"provider": event_id}
            )
    if current:
        out.append(current)
    return out


def report() -> None:
    sys.path.insert(0, str(ROOT))
    from app.catalog.telemetry import data_components_for, load_log_source_map

    table = load_log_source_map(YAML_PATH)
    for name in ("sigma-attack18", "open-xp-rules", "sigma"):
        path = catalog_dir() / f"{name}.normalized.json.gz"
        if not path.exists():
            continue
        with gzip.open(path) as fh:
            records = json.load(fh)
        rules = [normalized_log_sources(r["log_sources"]) for r in records]
        with_ls = [r for r in rules if r]
        start = time.perf_counter()
        results = [data_components_for(r, table) for r in with_ls]
        elapsed = (time.perf_counter() - start) * 1000
        linked = sum(1 for r in results if r)
        unlinked: collections.Counter[str] = collections.Counter()
        for rule, result in zip(with_ls, results, strict=True):
            if not result:
                unlinked[json.dumps(rule, sort_keys=True)] += 1
        print(
            f"{name}: {linked}/{len(with_ls)} rules with log sources linked "
            f"({100 * linked / len(with_ls):.1f}%), {elapsed:.1f} ms"
        )
        for combo, count in unlinked.most_common(15):
            print(f"   {count:4d} {combo}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the YAML sections")
    parser.add_argument("--report", action="store_true", help="link rates on shared catalogs")
    args = parser.parse_args()
    if args.report:
        report()
        return
    objects = load_bundle()
    components = sorted(
        o["name"] for o in objects if o["type"] == "x-mitre-data-component" and active(o)
    )
    text = YAML_PATH.read_text(encoding="utf-8")
    channels = yaml.load(text, Loader=yaml.CSafeLoader)["channels"]
    sections = render(components, derive_events(objects, channels))
    if not args.write:
        print(sections["components"] + sections["events"], end="")
        return
    for section, body in sections.items():
        text = replace_section(text, section, body)
    YAML_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {YAML_PATH}")


if __name__ == "__main__":
    main()

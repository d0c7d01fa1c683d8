"""Hypothesis strategies shared by the parser fuzz tests and `scripts/fuzz_parsers.py`.

Seeds are real inputs: a sample of the shared ICS bundles (STIX 2.0 and 2.1) and a few files of
each catalog format (Sigma and MaxPatrol XP rules from ../shared/catalogs, Elastic, Splunk and
canonical fixtures). Mutations drop fields, change their types, truncate, or replace text; the
property checked on every input is the one every parser promises: a result, or a KbmapError.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import json
import tarfile
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml
from hypothesis import strategies as st

from app.attack.stix import ParsedRelease, parse_bundle
from app.catalog import registry
from app.catalog.base import ParsedCatalog, ParsedRule
from app.catalog.source import source_from_bytes
from app.core.config import Limits
from app.core.errors import KbmapError

ROOT = Path(__file__).resolve().parents[2]
ATTACK_DIR = ROOT.parent / "shared" / "attack"
CATALOG_DIR = ROOT.parent / "shared" / "catalogs"
FIXTURES = ROOT / "tests" / "fixtures" / "catalogs"
MAX_BYTES = 50 << 20
LIMITS = Limits()

# --- JSON values of every type ---------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "T1059", "attack.t1059.001", "enterprise-attack", "18.1", "x" * 300])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON-like tree (the root is ())."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


@st.composite
def mutate_tree(draw: st.DrawFn, doc: Any, *, rounds: int = 3) -> Any:
    """Drop keys, replace values by values of another type, duplicate list items, empty containers."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, rounds))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["drop", "replace", "replace", "wrap", "dup", "empty"]))
        if not path:
            doc = draw(JSON) if op == "replace" else [doc] if op == "wrap" else doc
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if op == "drop":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(JSON)
        elif op == "wrap":
            parent[key] = draw(
                st.sampled_from([[parent[key]], {"x": parent[key]}, str(parent[key])])
            )
        elif op == "dup" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif op == "empty":
            parent[key] = draw(st.sampled_from([[], {}, "", 0, None]))
    return doc


# --- STIX bundles ----------------------------------------------------------------------------


@cache
def stix_seeds() -> tuple[dict[str, Any], ...]:
    """Small real bundles: up to 4 objects of each type of the ICS 18.1 release (STIX 2.0 and
    2.1, so the collection object is in one), and the relationships between the chosen ones."""
    seeds = []
    for name in ("ics-attack-18.1.json.gz", "stix21/ics-attack-18.1.json.gz"):
        doc = orjson.loads(gzip.decompress((ATTACK_DIR / name).read_bytes()))
        per_type: dict[str, int] = {}
        chosen: list[dict[str, Any]] = []
        for obj in doc["objects"]:
            if obj["type"] == "relationship" or per_type.get(obj["type"], 0) >= 4:
                continue
            per_type[obj["type"]] = per_type.get(obj["type"], 0) + 1
            chosen.append(obj)
        ids = {o["id"] for o in chosen}
        rels = [
            o
            for o in doc["objects"]
            if o["type"] == "relationship" and o["source_ref"] in ids and o["target_ref"] in ids
        ]
        seeds.append({**doc, "objects": chosen + rels[:12]})
    return tuple(seeds)


@st.composite
def mutated_bundles(draw: st.DrawFn) -> bytes:
    doc = draw(st.sampled_from(stix_seeds()))
    if draw(st.booleans()):  # mutate inside one object (most of the parser's work is there)
        doc = copy.deepcopy(doc)
        objects = doc["objects"]
        i = draw(st.integers(0, len(objects) - 1))
        objects[i] = draw(mutate_tree(objects[i]))
    else:
        doc = draw(mutate_tree(doc))
    raw = orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    if draw(st.integers(0, 4)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    if draw(st.integers(0, 3)) == 0:
        raw = gzip.compress(raw)
        if draw(st.booleans()):
            raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


RANDOM_BUNDLES = (
    JSON.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS))
    | st.fixed_dictionaries({"type": st.just("bundle"), "objects": st.lists(JSON, max_size=5)}).map(
        orjson.dumps
    )
    | st.binary(max_size=300)
    | st.binary(max_size=300).map(lambda b: b"\x1f\x8b" + b)
)


def check_stix(raw: bytes, version: str | None = None) -> ParsedRelease | None:
    """The promise: a ParsedRelease or a KbmapError, nothing else."""
    try:
        parsed = parse_bundle(raw, source="fuzz.json", version=version, max_bytes=MAX_BYTES)
    except KbmapError:
        return None
    assert isinstance(parsed, ParsedRelease)
    for row in parsed.objects:  # what the bulk insert binds: text, flags, lists of text, a dict
        assert all(isinstance(v, str) for v in row[:2]) and isinstance(row[11], dict), row
        assert all(v is None or isinstance(v, str) for v in row[2:8]), row
        assert isinstance(row[8], bool) and isinstance(row[9], bool), row
        assert all(isinstance(p, str) for p in row[10]), row
    for rel in parsed.relationships:
        assert all(isinstance(v, str) for v in rel[:5]), rel
    assert all(isinstance(t, str) and isinstance(p, str) for t, p in parsed.technique_tactics)
    return parsed


# --- catalogs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A real input: its files and whether it is read as a tree (archive) or one file."""

    label: str
    files: tuple[tuple[str, bytes], ...]
    tree: bool


def _members(archive: Path, wanted: list[str]) -> tuple[tuple[str, bytes], ...]:
    with tarfile.open(archive) as tar:
        out = []
        for name in wanted:
            fh = tar.extractfile(name)
            assert fh is not None, name
            out.append((name, fh.read()))
    return tuple(out)


@cache
def catalog_seeds() -> tuple[Seed, ...]:
    seeds: list[Seed] = []
    with tarfile.open(CATALOG_DIR / "sigma-rules.tar.gz") as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile() and m.name.endswith(".yml"))
    rules = [n for n in names if n.startswith("rules/")]
    picks = [
        rules[0],
        rules[len(rules) // 2],
        rules[-1],
        *[n for n in names if "deprecated/" in n][:1],
    ]
    for name in picks:
        seeds.append(
            Seed(f"sigma {name}", _members(CATALOG_DIR / "sigma-rules.tar.gz", [name]), True)
        )
    xp = CATALOG_DIR / "open-xp-rules-rules.tar.gz"
    with tarfile.open(xp) as tar:
        metas = sorted(m.name for m in tar.getmembers() if m.name.endswith("/metainfo.yaml"))
        metas = [m for m in metas if "/correlation_rules/" in m]
    for meta in (metas[0], metas[len(metas) // 2]):
        folder = meta.rsplit("/", 1)[0]
        wanted = [
            meta,
            f"{folder}/rule.co",
            f"{folder}/i18n/i18n_en.yaml",
            f"{folder}/i18n/i18n_ru.yaml",
        ]
        seeds.append(Seed(f"xp {folder}", _members(xp, wanted), True))
    for path in sorted((FIXTURES / "elastic").rglob("*.toml"))[:2]:
        seeds.append(
            Seed(f"elastic {path.name}", ((f"rules/{path.name}", path.read_bytes()),), True)
        )
    for path in sorted((FIXTURES / "splunk").rglob("*.yml"))[:2]:
        seeds.append(
            Seed(
                f"splunk {path.name}",
                ((f"detections/endpoint/{path.name}", path.read_bytes()),),
                True,
            )
        )
    for path in sorted((FIXTURES / "canonical").iterdir()):
        seeds.append(Seed(f"canonical {path.name}", ((path.name, path.read_bytes()),), False))
    return tuple(seeds)


YAML_FRAGMENTS = st.sampled_from(
    [
        "[]",
        "{}",
        "~",
        "null",
        "123",
        "-1.5e400",
        "true",
        "2024-01-01",
        "2024-01-01T00:00:00Z",
        "!!binary aGVsbG8=",
        "[a, [b, {c: d}]]",
        "{a: [1, 2]}",
        '"\\u0000"',
        "&x foo",
        "*x",
        "!!python/object/apply:os.system ['true']",
        "'unterminated",
        "|\n  multi\n  line",
        ".inf",
        ".nan",
        "0x1F",
        "!tagged x",
        "!!set {a, b}",
        "!!omap [a: 1]",
        "? complex",
        "{<<: {a: 1}}",
        "- a\n- b",
        "\t",
        "\x00",
        "\ufeff",
        "%YAML 1.1",
        "---",
        "...",
        "T1059.001",
        "attack.t1003",
        "[attack.t1059, 5, null]",
        '"T1550/001"',
    ]
)
TOML_FRAGMENTS = st.sampled_from(
    [
        "[]",
        "{}",
        "1979-05-27T07:32:00Z",
        "07:32:00",
        "inf",
        "nan",
        "1",
        "true",
        '"T1059"',
        "[1, [2]]",
        "{ a = 1 }",
        '"""',
        "'''x'''",
        "[[rule.threat]]",
        "[rule]",
        "= =",
        '""',
    ]
)


def _toml(value: Any) -> str:
    """A tiny TOML writer: inline tables everywhere (None becomes a string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if not isinstance(value, float) or value == value else "nan"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps("" if value is None else str(value), ensure_ascii=False)


def _load(path: str, data: bytes) -> tuple[str, Any] | None:
    try:
        if path.endswith(".toml"):
            return "toml", tomllib.loads(data.decode())
        if path.endswith(".json"):
            return "json", orjson.loads(data)
        if path.endswith((".yml", ".yaml")):
            return "yaml", list(yaml.safe_load_all(data))
    except Exception:
        return None
    return None


def _dump(kind: str, doc: Any) -> bytes:
    if kind == "toml":
        if not isinstance(doc, dict):
            return _toml(doc).encode()
        return "\n".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in doc.items()).encode()
    if kind == "json":
        return orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS)
    docs = doc if isinstance(doc, list) and doc else [doc]
    return yaml.safe_dump_all(docs, allow_unicode=True, sort_keys=False).encode()


@st.composite
def mutate_text(draw: st.DrawFn, path: str, data: bytes) -> bytes:
    text = data.decode("utf-8", "replace")
    fragments = TOML_FRAGMENTS if path.endswith(".toml") else YAML_FRAGMENTS
    for _ in range(draw(st.integers(1, 3))):
        lines = text.splitlines(keepends=True) or [""]
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["cut", "drop", "value", "value", "insert", "dup", "bytes"]))
        if op == "cut":
            text = text[: draw(st.integers(0, len(text)))]
        elif op == "drop":
            del lines[i]
            text = "".join(lines)
        elif op == "value":
            line = lines[i]
            sep = " = " if path.endswith(".toml") else ": "
            head = line.split(sep, 1)[0] if sep in line else line.rstrip("\n")
            lines[i] = f"{head}{sep}{draw(fragments | st.text(max_size=10))}\n"
            text = "".join(lines)
        elif op == "insert":
            lines.insert(i, draw(fragments | st.text(max_size=20)) + "\n")
            text = "".join(lines)
        elif op == "dup":
            lines.insert(i, lines[i])
            text = "".join(lines)
        else:
            raw = bytearray(text.encode())
            if raw:
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
            return bytes(raw)
    return text.encode()


@st.composite
def mutate_file(draw: st.DrawFn, path: str, data: bytes) -> bytes:
    loaded = _load(path, data)
    if loaded is not None and draw(st.booleans()):
        kind, doc = loaded
        return _dump(kind, draw(mutate_tree(doc)))
    return draw(mutate_text(path, data))


@st.composite
def mutated_catalogs(draw: st.DrawFn) -> tuple[str, bytes]:
    """(upload file name, bytes): a real seed with one to three of its files mutated."""
    seed = draw(st.sampled_from(catalog_seeds()))
    files = list(seed.files)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(files) - 1))
        path, data = files[i]
        files[i] = (path, draw(mutate_file(path, data)))
    if not seed.tree:
        return files[0]
    return "fuzz.tar", tar_of(files)


def tar_of(files: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in files:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


FILE_NAMES = st.sampled_from(
    ["x.yaml", "x.yml", "x.json", "x.csv", "x.txt", "x.toml", "metainfo.yaml", "x.gz", "x.tar.gz"]
)
RANDOM_CATALOGS = st.one_of(
    st.tuples(FILE_NAMES, st.binary(max_size=400)),
    st.tuples(FILE_NAMES, st.text(max_size=400).map(str.encode)),
    st.tuples(
        st.sampled_from(["x.yaml", "x.json"]), JSON.map(lambda v: yaml.safe_dump(v).encode())
    ),
    st.tuples(
        st.just("x.json"),
        st.fixed_dictionaries({"name": JSON, "rules": st.lists(JSON, max_size=4)}).map(
            lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)
        ),
    ),
    st.tuples(
        st.just("x.tar"),
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "rules/a.yml",
                        "r/metainfo.yaml",
                        "r/rule.co",
                        "r/i18n/i18n_en.yaml",
                        "detections/a.yml",
                        "a.toml",
                    ]
                ),
                st.binary(max_size=200) | JSON.map(lambda v: yaml.safe_dump(v).encode()),
            ),
            max_size=4,
            unique_by=lambda t: t[0],
        ).map(tar_of),
    ),
)


def check_catalog(filename: str, data: bytes) -> list[ParsedCatalog]:
    """Open the input as an upload; detect and every importer's parse give a result or a KbmapError."""
    try:
        source = source_from_bytes(filename, data, LIMITS)
    except KbmapError:
        return []
    with contextlib.suppress(KbmapError):
        registry.detect(source)
    out = []
    for importer in registry.importers().values():
        try:
            parsed = importer.parse(source, LIMITS)
        except KbmapError:
            continue
        assert isinstance(parsed, ParsedCatalog)
        for rule in parsed.rules:
            assert_well_typed(rule)
        out.append(parsed)
    return out


def assert_well_typed(rule: ParsedRule) -> None:
    """What validation and the database write rely on: text where text belongs."""
    assert isinstance(rule.rule_id, str) and rule.rule_id, rule
    for text in (rule.name, rule.title, rule.description):
        assert isinstance(text, str), rule
    for opt in (rule.package, rule.severity, rule.status, rule.path):
        assert opt is None or isinstance(opt, str), rule
    for items in (rule.techniques, rule.tactics, rule.platforms, rule.references, rule.raw_tags):
        assert isinstance(items, list) and all(isinstance(i, str) for i in items), rule
    assert all(
        isinstance(ls, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in ls.items())
        for ls in rule.log_sources
    ), rule
    assert isinstance(rule.enabled, bool) and (rule.line is None or isinstance(rule.line, int))
    orjson.dumps(rule.extra, default=str)

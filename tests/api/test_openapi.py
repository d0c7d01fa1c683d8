"""The OpenAPI schema as a contract: media types of the downloads, typed answers, operation ids.

A generated client uses all of it (tests/api/test_generated_client.py); these checks name the
broken part of the schema directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests import rawdata

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Free-form by design, named here so any other untyped answer fails: an audit event's detail of
# a shape kbmap does not write (those it writes, a request's and a command's, are typed), and a
# rule's extra fields, which are each format's own (Sigma's author, XP's group, Sentinel's kind).
FREE_FORM = {"AuditEventRead.detail", "RuleFull.extra"}
SUBSCHEMAS = ("items", "anyOf", "oneOf", "allOf", "prefixItems")


@pytest.fixture(scope="module")
def client(catalog_sqlite_file: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{catalog_sqlite_file}", environment="test")
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def spec(client: TestClient) -> dict[str, Any]:
    return client.app.openapi()  # type: ignore[attr-defined,no-any-return]


def _answer(spec: dict[str, Any], path: str) -> dict[str, Any]:
    content: dict[str, Any] = spec["paths"][path]["get"]["responses"]["200"]["content"]
    return content


def _media(response: Any) -> str:
    return str(response.headers["content-type"]).split(";")[0]


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        ("/api/v1/catalogs/maxpatrol-siem/export", {}, "application/yaml"),
        ("/api/v1/catalogs/maxpatrol-siem/export", {"format": "csv"}, "text/csv"),
        ("/api/v1/catalogs/maxpatrol-siem/export", {"format": "json"}, "application/json"),
        ("/api/v1/layers/coverage.svg", {"catalog": "maxpatrol-siem"}, "image/svg+xml"),
        ("/api/v1/layers/coverage.xlsx", {"catalog": "maxpatrol-siem"}, XLSX),
    ],
)
def test_downloads_declare_the_media_types_they_send(
    client: TestClient, spec: dict[str, Any], path: str, params: dict[str, str], expected: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    assert _media(r) == expected
    template = path.replace("maxpatrol-siem", "{name}").replace("coverage.", "{kind}.")
    assert expected in _answer(spec, template)


def test_export_declares_every_format_and_the_json_form_matches_its_schema(
    client: TestClient, spec: dict[str, Any]
) -> None:
    content = _answer(spec, "/api/v1/catalogs/{name}/export")
    assert set(content) == {
        "application/yaml",
        "text/csv",
        "application/json",
        "application/stix+json;version=2.1",
    }
    schema = content["application/json"]["schema"]
    doc = client.get("/api/v1/catalogs/maxpatrol-siem/export", params={"format": "json"}).json()
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert not jsonschema.Draft202012Validator(schema).is_valid({**doc, "rules": [{}]})


def _open_schemas(spec: dict[str, Any]) -> set[str]:
    """Schemas reachable from a 2xx JSON answer that name no fields (`{}`, an object without
    properties, `additionalProperties: true`), as `Model.field` or the operation id."""
    components = spec["components"]["schemas"]
    found: set[str] = set()
    seen: set[str] = set()

    def walk(node: Any, where: str) -> None:
        if isinstance(node, list):
            for x in node:
                walk(x, where)
            return
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                walk(components[name], name)
            return
        extra = node.get("additionalProperties")
        untyped = not node or (node.get("type") == "object" and "properties" not in node)
        if extra is True or (untyped and not isinstance(extra, dict)):
            found.add(where)
        for field, sub in node.get("properties", {}).items():
            walk(sub, f"{where}.{field}")
        for key in SUBSCHEMAS:
            if key in node:
                walk(node[key], where)
        if isinstance(extra, dict):
            walk(extra, where)

    for item in spec["paths"].values():
        for op in item.values():
            for code, answer in op["responses"].items():
                for media, body in answer.get("content", {}).items():
                    if code.startswith("2") and media.endswith("json"):
                        walk(body.get("schema", {}), op["operationId"])
    return found


def test_every_answer_has_typed_fields(spec: dict[str, Any]) -> None:
    assert _open_schemas(spec) == FREE_FORM


@pytest.mark.parametrize("kind", ["mitigations", "groups", "software", "campaigns", "assets"])
def test_object_lists_have_a_typed_item_model(
    client: TestClient, spec: dict[str, Any], kind: str
) -> None:
    page = _answer(spec, f"/api/v1/{kind}")["application/json"]["schema"]["$ref"]
    model = spec["components"]["schemas"][page.rsplit("/", 1)[1]]
    item = model["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[1]
    fields = spec["components"]["schemas"][item]["properties"]
    domain = "ics" if kind == "assets" else "enterprise"
    body = client.get(f"/api/v1/{kind}", params={"domain": domain, "limit": 5}).json()
    assert body["items"] and all(set(row) == set(fields) for row in body["items"])


# STIX bookkeeping and the fields an object read has as its own columns (not attributes)
CORE = {"type", "id", "name", "description", "created", "modified", "revoked", "spec_version"}
CORE |= {"external_references", "object_marking_refs", "created_by_ref", "x_mitre_deprecated"}
CORE |= {"x_mitre_platforms", "x_mitre_modified_by_ref", "x_mitre_attack_spec_version"}


def _raw_attributes(obj: dict[str, Any]) -> dict[str, Any]:
    """What the raw object says beyond its core, named as the API names it."""
    out = {
        k.removeprefix("x_mitre_"): v
        for k, v in obj.items()
        if k not in CORE and not k.endswith("_refs")
    }
    if obj["type"] in ("malware", "tool"):
        out["software_type"] = obj["type"]
    return out


@pytest.mark.parametrize(
    ("route", "stix_type", "bundle", "needs"),
    [
        ("groups", "intrusion-set", "enterprise-attack-18.1.json.gz", "aliases"),
        ("software", "malware", "enterprise-attack-18.1.json.gz", "x_mitre_aliases"),
        ("campaigns", "campaign", "enterprise-attack-18.1.json.gz", "first_seen"),
        (
            "data-components",
            "x-mitre-data-component",
            "mobile-attack-18.1.json.gz",
            "x_mitre_log_sources",
        ),
        (
            "analytics",
            "x-mitre-analytic",
            "enterprise-attack-18.1.json.gz",
            "x_mitre_mutable_elements",
        ),
        ("assets", "x-mitre-asset", "ics-attack-18.1.json.gz", "x_mitre_related_assets"),
    ],
)
def test_typed_attributes_keep_what_the_raw_object_carries(
    client: TestClient, route: str, stix_type: str, bundle: str, needs: str
) -> None:
    """Typing `attributes` must not drop a property: one object of each kind that has the
    richest property of its kind, compared with the raw bundle."""
    obj = next(
        o
        for o in rawdata.objects(bundle)
        if o["type"] == stix_type and rawdata.active(o) and o.get(needs)
    )
    domain = bundle.split("-")[0]
    r = client.get(f"/api/v1/{route}/{rawdata.ext_id(obj)}", params={"domain": domain})
    assert r.status_code == 200, r.text
    assert r.json()["attributes"] == _raw_attributes(obj)


def test_operation_ids_are_the_route_function_names(spec: dict[str, Any]) -> None:
    ops = {
        op["operationId"]: (method.upper(), path)
        for path, item in spec["paths"].items()
        for method, op in item.items()
    }
    assert len(ops) == sum(len(item) for item in spec["paths"].values())  # unique
    assert all(name.isidentifier() for name in ops), sorted(ops)
    assert ops["list_mitigations"] == ("GET", "/api/v1/mitigations")
    assert ops["get_technique"] == ("GET", "/api/v1/techniques/{attack_id}")
    assert ops["export_catalog"] == ("GET", "/api/v1/catalogs/{name}/export")
    assert ops["get_detection_strategy"] == ("GET", "/api/v1/detection-strategies/{attack_id}")
    assert ops["list_technique_coverage"] == ("GET", "/api/v1/coverage/techniques")


def test_the_schema_round_trips_as_json(spec: dict[str, Any]) -> None:
    """What clients download: plain JSON (no Python objects left in the inlined schemas)."""
    assert json.loads(json.dumps(spec)) == spec


def test_every_api_operation_declares_the_database_failures(spec: dict[str, Any]) -> None:
    """500, 503 and 507 are what a broken, unreachable or full database answers
    (tests/api/test_failures.py): a generated client must know their error body."""
    for path, item in spec["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method, op in item.items():
            for code in ("500", "503", "507"):
                body = op["responses"].get(code, {}).get("content", {}).get("application/json")
                assert body and body["schema"]["$ref"].endswith("/ErrorResponse"), (
                    method,
                    path,
                    code,
                )

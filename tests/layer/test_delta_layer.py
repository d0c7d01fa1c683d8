"""The delta layer (`/layers/delta?from=&to=`) on a history made through the API: sigma-attack18
imported as sa18, deleted, imported again (tests/layer/history_steps.py). What sa18 covered comes
from /coverage/techniques before the delete, never from the history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.layer.history_steps import API, NAME, Steps, history_steps

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "kb/schemas/navigator-layer-4.5.schema.json").read_text()
)


@pytest.fixture(scope="module")
def steps(loaded_sqlite_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Steps]:
    yield from history_steps(loaded_sqlite_file, tmp_path_factory.mktemp("delta"))


def delta(steps: Steps, status: int = 200, **params: Any) -> dict[str, Any]:
    r = steps.client.get(f"{API}/layers/delta", params={"catalog": NAME, **params})
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    return body


def marks(layer: dict[str, Any]) -> dict[str, str]:
    """Technique → gained / lost / unchanged, read from the colour through the legend."""
    legend = {x["color"]: x["label"].split(":")[0] for x in layer["legendItems"]}
    return {e["techniqueID"]: legend[e["color"]] for e in layer["techniques"] if "color" in e}


def meta(layer: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["value"] for m in layer["metadata"] if "name" in m}


def test_the_history_has_the_three_points(steps: Steps) -> None:
    assert steps.causes == ["catalog_import", "catalog_delete", "catalog_import"]
    assert len(steps.covered) > 300  # sigma-attack18 covers hundreds of techniques on 18.1


def test_delete_loses_every_technique_the_import_covered(steps: Steps) -> None:
    first, deleted, _ = steps.snapshots
    layer = delta(steps, **{"from": first, "to": deleted})
    jsonschema.validate(layer, SCHEMA)
    got = marks(layer)
    assert set(got) == steps.covered
    assert set(got.values()) == {"lost"}
    lost = [e for e in layer["techniques"] if "color" in e]
    assert all(f"catalog deleted ({NAME})" in e["comment"] for e in lost)
    m = meta(layer)
    assert (m["lost"], m["gained"], m["unchanged"]) == (str(len(steps.covered)), "0", "0")
    assert m["from"].startswith(f"snapshot {first} (") and "catalog import" in m["from"]
    assert m["to"].startswith(f"snapshot {deleted} (") and "catalog delete" in m["to"]
    assert f"catalog {NAME}" in layer["description"]


def test_reimport_gains_them_back_and_now_is_the_default_end(steps: Steps) -> None:
    _, deleted, again = steps.snapshots
    for params in ({"from": deleted, "to": again}, {"from": deleted}):
        layer = delta(steps, **params)
        jsonschema.validate(layer, SCHEMA)
        got = marks(layer)
        assert set(got) == steps.covered and set(got.values()) == {"gained"}
        assert all("rule added" in e["comment"] for e in layer["techniques"] if "color" in e)
    assert meta(delta(steps, **{"from": deleted}))["to"] == "now"


def test_import_to_reimport_is_unchanged(steps: Steps) -> None:
    first, _, again = steps.snapshots
    layer = delta(steps, **{"from": first, "to": again})
    got = marks(layer)
    assert set(got) == steps.covered and set(got.values()) == {"unchanged"}


def test_errors_name_what_is_wrong(steps: Steps) -> None:
    first, _, again = steps.snapshots
    backwards = delta(steps, 422, **{"from": again, "to": first})["error"]
    assert backwards["location"]["field"] == "from" and "after" in backwards["message"]
    unknown = delta(steps, 404, **{"from": 999_999})["error"]
    assert all(str(s) in unknown["message"] for s in steps.snapshots)
    assert delta(steps, 422)["error"]["location"]["field"] == "from"
    assert delta(steps, 422, **{"from": "1.5"})["error"]["location"]["field"] == "from"

"""Property-based API testing with schemathesis: every operation of the OpenAPI schema, with and
without an admin token, on a fresh copy of the catalog database.

Checks: no 5xx (`not_a_server_error`) and responses that match the schema
(`response_schema_conformance`), plus the status codes and content types the schema declares. A
failure prints the failing case (method, path, parameters, body) and a curl line to replay it.
"""

# ruff: noqa: E402  (schemathesis is a dev dependency: the module skips, or fails under CI, without it)

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.robustness.support import require

require("schemathesis")

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from app.auth.service import create_token
from app.core.config import Settings
from app.main import create_app

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
EXAMPLES = 12  # per operation and run; ~50 operations x 2 runs
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
CASES: Counter[str] = Counter()  # printed at the end of the run (tests/robustness/conftest.py)


def _config(*phases: str) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "phases": {
                p: {"enabled": p in phases} for p in ("examples", "coverage", "fuzzing", "stateful")
            },
            "generation": {"max-examples": EXAMPLES},
        }
    )


@pytest.fixture
def api(catalog_settings: Settings) -> Iterator[tuple[FastAPI, str]]:
    """The app on a fresh copy of the catalog database, and an admin token."""
    app = create_app(catalog_settings)
    with TestClient(app):  # runs the lifespan: the engine on app.state
        _, token = create_token(
            app.state.engine, catalog_settings, name="schemathesis", scopes=["admin"]
        )
        yield app, token


@pytest.fixture
def anonymous_schema(api: tuple[FastAPI, str]) -> Any:
    """Reads share their code with the admin run, so this one skips the coverage phase."""
    return schemathesis.openapi.from_asgi(
        "/openapi.json", api[0], config=_config("examples", "fuzzing")
    )


@pytest.fixture
def admin_schema(api: tuple[FastAPI, str]) -> Any:
    return schemathesis.openapi.from_asgi(
        "/openapi.json", api[0], config=_config("examples", "coverage", "fuzzing")
    )


@pytest.fixture
def admin_token(api: tuple[FastAPI, str]) -> str:
    return api[1]


anonymous = schemathesis.pytest.from_fixture("anonymous_schema")
# POST /refresh would fetch MITRE's index from the internet (tests/refresh covers it against a local
# server); everything else, DELETE of the real catalogs included, runs on the copy.
admin = schemathesis.pytest.from_fixture("admin_schema").exclude(
    method="POST", path="/api/v1/refresh"
)


def _call(case: Any, run: str, headers: dict[str, str] | None = None) -> None:
    CASES[run] += 1
    try:
        case.call_and_validate(headers=headers, checks=CHECKS)
    except Exception as exc:
        raise AssertionError(
            f"{run} case failed:\n{case.as_curl_command(headers=headers)}\n{exc}"
        ) from exc


@anonymous.parametrize()
@BOUNDED
def test_api_without_a_token(case: Any) -> None:
    """Reads are open on loopback; every write must be a 401, never a 5xx."""
    _call(case, "anonymous")


@admin.parametrize()
@BOUNDED
def test_api_with_an_admin_token(case: Any, admin_token: str) -> None:
    _call(case, "admin", {"Authorization": f"Bearer {admin_token}"})

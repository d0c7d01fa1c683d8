"""Fixtures shared by the API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.auth.service import create_token
from app.core.config import Settings
from app.main import create_app


@pytest.fixture
def catalog_client(catalog_settings: Settings) -> Iterator[TestClient]:
    """The app on a copy of the database with the shared catalogs, with a write token (uploads
    and deletes need one)."""
    with TestClient(create_app(catalog_settings)) as c:
        _, token = create_token(
            c.app.state.engine, catalog_settings, name="test-writer", scopes=["write"]
        )
        c.headers["Authorization"] = f"Bearer {token}"
        yield c

"""Building the server (no database is touched): the tools it lists, their bounds, and the
process's logging left as the entry point set it."""

from __future__ import annotations

import logging

import anyio
from mcp_types import Tool

from app.core.config import Settings
from app.core.db import make_engine
from app.mcp.server import TOOLS, build_server


def _tools() -> list[Tool]:
    server = build_server(make_engine("sqlite://"), Settings(environment="test"))
    return anyio.run(server.list_tools)


def test_every_tool_is_listed_read_only_with_a_description() -> None:
    tools = _tools()
    assert [t.name for t in tools] == list(TOOLS)
    for tool in tools:
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.description and len(tool.description) > 60


def test_inputs_are_bounded_like_the_api() -> None:
    schemas = {t.name: t.input_schema["properties"] for t in _tools()}
    for name, props in schemas.items():
        if "limit" in props:
            assert (props["limit"]["minimum"], props["limit"]["maximum"]) == (1, 50), name
            assert props["offset"]["minimum"] == 0, name
    query = schemas["search_rules"]["query"]["anyOf"][0]
    assert query["maxLength"] == 200 and query["pattern"] == r"^[^\x00-\x1f\x7f]*$"
    catalogs = schemas["coverage_summary"]["catalogs"]["anyOf"][0]
    assert catalogs["maxItems"] == 20 and catalogs["items"]["maxLength"] == 80
    assert schemas["rule"]["rule_id"]["maxLength"] == 300


def test_building_the_server_leaves_the_root_logger_alone() -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    _tools()
    assert (list(root.handlers), root.level) == before

"""The MCP server, built from settings and an engine: kbmap's read questions as tools, and the
technique page as a Markdown resource, for `kbmap mcp` (stdio) and `/mcp` on the server.

Arguments are typed and bounded like the API's query parameters (the SDK validates them against
the schema it publishes; a bad one is a tool error naming the field). Each call runs its
`tools.py` function in a worker thread, so a slow question never stalls the event loop the HTTP
server shares. A KbmapError becomes a tool error (`isError`) with the API's message, which for an
unknown release, catalog or environment lists the known ones. No tool writes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio.to_thread
import orjson
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field
from sqlalchemy import Engine

from app.core.config import Settings
from app.core.errors import KbmapError, NotFound
from app.mcp import tools
from app.mcp.tools import ScopeArgs

T = TypeVar("T")
NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
ID = r"^[A-Za-z0-9._-]+$"
VERSION = r"^\d+\.\d+$"
TEXT = r"^[^\x00-\x1f\x7f]*$"  # the API's QText: a NUL would cut the pattern on SQLite
RESOURCE_ID = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
INSTRUCTIONS = (
    "kbmap maps detection-rule catalogs onto MITRE ATT&CK. Ask technique_page for one technique "
    "(Markdown, rules paged with rules_offset); search to find anything by id, name, alias or "
    "words; search_techniques / search_rules to filter techniques and rules; "
    "coverage_summary, gaps, compare_catalogs and collect_next for coverage (filters as the "
    "API's: domain, version, catalogs, platforms, tactics, groups, environment); rule for one "
    "rule; release_diff for what a new ATT&CK release changes. Lists are paged: pass "
    "next_offset back as offset."
)

AttackId = Annotated[
    str, Field(max_length=40, pattern=ID, description="technique id, e.g. T1059.001")
]
Domain = Annotated[
    str | None,
    Field(max_length=40, description="enterprise, mobile or ics (default enterprise)"),
]
Version = Annotated[
    str | None,
    Field(max_length=20, pattern=VERSION, description="ATT&CK release, e.g. 18.1 (default newest)"),
]
CatalogName = Annotated[str, Field(max_length=80, pattern=ID)]
Catalogs = Annotated[
    list[CatalogName] | None,
    Field(max_length=20, description="catalog names (default: every catalog)"),
]
Side = Annotated[list[CatalogName], Field(min_length=1, max_length=20)]
Environment = Annotated[
    str | None,
    Field(
        max_length=80,
        pattern=NAME,
        description="environment name: count only rules its telemetry lets fire",
    ),
]
Words = Annotated[list[Annotated[str, Field(max_length=100)]] | None, Field(max_length=20)]
Groups = Annotated[
    list[Annotated[str, Field(max_length=100)]] | None,
    Field(max_length=50, description="groups, software, campaigns by id, name or alias"),
]
Query = Annotated[
    str | None,
    Field(
        max_length=200,
        pattern=TEXT,
        description="text in id, name or description (matched literally, any case)",
    ),
]
Limit = Annotated[int, Field(ge=1, le=50, description="page size (at most 50)")]
Offset = Annotated[int, Field(ge=0, le=10_000_000, description="where the page starts")]


async def _in_thread(call: Callable[[], T]) -> T:
    """The call in a worker thread: the HTTP server's event loop goes on serving meanwhile."""
    return await anyio.to_thread.run_sync(call)


async def _inline(call: Callable[[], T]) -> T:
    """The call on the event loop's own thread: stdio serves one assistant, and each hand-over
    to a worker and back costs a thread wake-up (0.2-10 ms on a busy machine, measured)."""
    return call()


def _json(data: dict[str, Any]) -> CallToolResult:
    """Structured content, and the same as compact JSON text for clients that read text."""
    text = orjson.dumps(data).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def _markdown(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)])


class KbmapTools:
    """The tools, bound to one engine and settings; each method is one tool (its docstring is
    the description an assistant reads)."""

    def __init__(self, engine: Engine, settings: Settings, *, threads: bool = True) -> None:
        self.engine = engine
        self.settings = settings
        self._run: Callable[[Callable[[], Any]], Awaitable[Any]] = (
            _in_thread if threads else _inline
        )

    async def _answer(self, call: Callable[[], T]) -> T:
        """The call run; a kbmap error becomes a tool error with its message (for an unknown
        value, the known ones)."""
        try:
            result: T = await self._run(call)
        except KbmapError as exc:
            raise ToolError(str(exc)) from exc
        return result

    async def technique_page(
        self,
        attack_id: AttackId,
        domain: Domain = None,
        version: Version = None,
        catalogs: Catalogs = None,
        environment: Environment = None,
        rules_offset: Offset = 0,
    ) -> CallToolResult:
        """One ATT&CK technique as Markdown (≤ 8 kB): tactics, platforms, description, the rules
        that cover it (paged: pass the rules_offset the page names), detection, mitigations,
        groups and software using it. With environment, whether each rule can fire there."""
        call = partial(
            tools.technique_page,
            self.engine,
            self.settings,
            attack_id=attack_id,
            domain=domain,
            version=version,
            catalogs=catalogs,
            environment=environment,
            rules_offset=rules_offset,
        )
        return _markdown(await self._answer(call))

    async def search(
        self,
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=200,
                pattern=TEXT,
                description="ids (T1550.001, G0016, PT-CR-956), names, aliases or words",
            ),
        ],
        domain: Domain = None,
        version: Version = None,
        kinds: Annotated[
            list[Annotated[str, Field(max_length=40)]] | None,
            Field(max_length=20, description="technique, group, rule, … (default every kind)"),
        ] = None,
        limit: Limit = 10,
        offset: Offset = 0,
    ) -> CallToolResult:
        """Find anything by id, name, alias, rule title or words: techniques, groups, software,
        campaigns, mitigations, data components, detection strategies, analytics, rules and
        catalogs, ranked (an exact id first, a name before a description), grouped by kind;
        each kind paged alike (pass a kind's next_offset back as offset, with that kind)."""
        call = partial(
            tools.search,
            self.engine,
            query=query,
            domain=domain,
            version=version,
            kinds=kinds,
            limit=limit,
            offset=offset,
        )
        return _json(await self._answer(call))

    async def search_techniques(
        self,
        query: Query = None,
        domain: Domain = None,
        version: Version = None,
        tactic: Annotated[str | None, Field(max_length=60)] = None,
        platform: Annotated[str | None, Field(max_length=60)] = None,
        limit: Limit = 10,
        offset: Offset = 0,
    ) -> CallToolResult:
        """Find ATT&CK techniques by text in id, name or description, optionally of one tactic
        or platform. Returns ids, names, tactics, platforms; paged."""
        call = partial(
            tools.search_techniques,
            self.engine,
            query=query,
            domain=domain,
            version=version,
            tactic=tactic,
            platform=platform,
            limit=limit,
            offset=offset,
        )
        return _json(await self._answer(call))

    async def search_rules(
        self,
        query: Query = None,
        catalogs: Catalogs = None,
        technique: Annotated[str | None, Field(max_length=20, pattern=ID)] = None,
        subtechniques: bool = False,
        limit: Limit = 10,
        offset: Offset = 0,
    ) -> CallToolResult:
        """Find detection rules by text, catalog or technique (with subtechniques=true, also the
        technique's sub-techniques). Returns catalog, rule id, title, techniques; paged."""
        call = partial(
            tools.search_rules,
            self.engine,
            query=query,
            catalogs=catalogs,
            technique=technique,
            subtechniques=subtechniques,
            limit=limit,
            offset=offset,
        )
        return _json(await self._answer(call))

    async def rule(
        self,
        catalog: Annotated[str, Field(max_length=80, pattern=ID)],
        rule_id: Annotated[str, Field(min_length=1, max_length=300)],
    ) -> CallToolResult:
        """One detection rule: title, description, platforms, log sources, data components, its
        technique mappings with how each was validated, and its body (the query in the rule's
        own language, cut at 3,000 characters)."""
        call = partial(tools.rule, self.engine, catalog=catalog, rule_id=rule_id)
        return _json(await self._answer(call))

    async def coverage_summary(
        self,
        domain: Domain = None,
        version: Version = None,
        catalogs: Catalogs = None,
        platforms: Words = None,
        tactics: Words = None,
        groups: Groups = None,
        environment: Environment = None,
    ) -> CallToolResult:
        """How much of ATT&CK the catalogs cover: techniques and sub-techniques covered, by
        tactic, platform and catalog; with environment, by effective state too."""
        scope = ScopeArgs(domain, version, catalogs, platforms, tactics, groups, environment)
        call = partial(tools.coverage_summary, self.engine, self.settings, scope=scope)
        return _json(await self._answer(call))

    async def gaps(
        self,
        domain: Domain = None,
        version: Version = None,
        catalogs: Catalogs = None,
        platforms: Words = None,
        tactics: Words = None,
        groups: Groups = None,
        environment: Environment = None,
        collected: Annotated[
            list[Annotated[str, Field(max_length=100)]] | None,
            Field(max_length=100, description="data components you collect"),
        ] = None,
        min_score: Annotated[float, Field(ge=0, le=100, description="weak below this")] = 0.0,
        limit: Limit = 10,
        offset: Offset = 0,
    ) -> CallToolResult:
        """Uncovered and weakly covered techniques, ranked by priority (who uses them, where,
        whether the telemetry is already there). Paged; long lists cut to 5."""
        scope = ScopeArgs(domain, version, catalogs, platforms, tactics, groups, environment)
        call = partial(
            tools.gaps,
            self.engine,
            self.settings,
            scope=scope,
            collected=collected,
            min_score=min_score,
            limit=limit,
            offset=offset,
        )
        return _json(await self._answer(call))

    async def compare_catalogs(
        self,
        a: Annotated[Side, Field(description="catalog(s) of side A")],
        b: Annotated[Side, Field(description="catalog(s) of side B")],
        domain: Domain = None,
        version: Version = None,
        platforms: Words = None,
        tactics: Words = None,
        groups: Groups = None,
        environment: Environment = None,
        limit: Limit = 10,
        offset: Offset = 0,
    ) -> CallToolResult:
        """Which techniques side A covers, side B, both or neither: counts, per tactic, and
        `limit` technique ids of each list from offset."""
        scope = ScopeArgs(domain, version, None, platforms, tactics, groups, environment)
        call = partial(
            tools.compare_catalogs,
            self.engine,
            self.settings,
            scope=scope,
            a=a,
            b=b,
            limit=limit,
            offset=offset,
        )
        return _json(await self._answer(call))

    async def collect_next(
        self,
        environment: Annotated[str, Field(max_length=80, pattern=NAME)],
        domain: Domain = None,
        version: Version = None,
        catalogs: Catalogs = None,
        platforms: Words = None,
        tactics: Words = None,
        groups: Groups = None,
        limit: Limit = 10,
        offset: Offset = 0,
    ) -> CallToolResult:
        """What to collect next in an environment: log sources (a data component on a system)
        ranked by the techniques and rules onboarding them makes effective. Paged."""
        scope = ScopeArgs(domain, version, catalogs, platforms, tactics, groups, environment)
        call = partial(
            tools.collect_next,
            self.engine,
            self.settings,
            scope=scope,
            limit=limit,
            offset=offset,
        )
        return _json(await self._answer(call))

    async def release_diff(
        self,
        from_version: Annotated[str, Field(max_length=20, pattern=VERSION)],
        to_version: Annotated[str, Field(max_length=20, pattern=VERSION)],
        domain: Annotated[str, Field(max_length=40)] = "enterprise",
        catalogs: Catalogs = None,
        limit: Limit = 10,
        offset: Offset = 0,
    ) -> CallToolResult:
        """What changed between two loaded ATT&CK releases (counts, and `limit` entries of each
        change list from offset) and what it does to each catalog: stale mappings with the
        suggested replacement, coverage before and after."""
        call = partial(
            tools.release_diff,
            self.engine,
            self.settings,
            from_version=from_version,
            to_version=to_version,
            domain=domain,
            catalogs=catalogs,
            limit=limit,
            offset=offset,
        )
        return _json(await self._answer(call))

    async def page_resource(self, attack_id: str) -> str:
        """The technique page in Markdown, from the newest release of each domain."""
        return await self._resource(attack_id, None, None)

    async def release_page_resource(self, domain: str, version: str, attack_id: str) -> str:
        """The technique page in Markdown, from one release."""
        return await self._resource(attack_id, domain, version)

    async def _resource(self, attack_id: str, domain: str | None, version: str | None) -> str:
        values = (attack_id, domain or "x", version or "0.0")
        if not all(RESOURCE_ID.match(v) for v in values):
            raise ResourceNotFoundError(
                "a technique id, domain and version are letters, digits, .-_"
            )
        call = partial(
            tools.technique_page,
            self.engine,
            self.settings,
            attack_id=attack_id,
            domain=domain,
            version=version,
        )
        try:
            text: str = await self._run(call)
        except NotFound as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        except KbmapError as exc:
            raise ResourceError(str(exc)) from exc
        return text


TOOLS = (
    "technique_page",
    "search",
    "search_techniques",
    "search_rules",
    "rule",
    "coverage_summary",
    "gaps",
    "compare_catalogs",
    "collect_next",
    "release_diff",
)


def build_server(engine: Engine, settings: Settings, *, threads: bool = True) -> MCPServer:
    """kbmap's MCP server: every tool read-only, the technique page as a resource template.
    With `threads` (the HTTP server), each call runs in a worker thread; without (stdio), on the
    event loop's thread."""
    from importlib.metadata import version

    server: MCPServer = _leaving_logging_alone(
        lambda: MCPServer(
            "kbmap",
            title="kbmap: ATT&CK, detection rules, coverage",
            instructions=INSTRUCTIONS,
            version=version("kbmap"),
            log_level="WARNING",
        )
    )
    bound = KbmapTools(engine, settings, threads=threads)
    for name in TOOLS:
        server.add_tool(getattr(bound, name), annotations=READ_ONLY, structured_output=False)
    server.resource(
        "kbmap://techniques/{attack_id}", name="technique_page", mime_type="text/markdown"
    )(bound.page_resource)
    server.resource(
        "kbmap://techniques/{domain}/{version}/{attack_id}",
        name="technique_page_in_release",
        mime_type="text/markdown",
    )(bound.release_page_resource)
    return server


def _leaving_logging_alone(make: Callable[[], T]) -> T:
    """What `make` returns, with the root logger as it was: the SDK's constructor calls
    `logging.basicConfig` (a Rich handler on the root logger), which would restyle every log line
    of the `kbmap serve` process that mounts it; logging is the entry point's to configure."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return make()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

"""Coverage commands: `kbmap coverage` (summary or comparison) and `kbmap gaps`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlmodel import Session

    from app.coverage.models import CatalogComparison, CoverageSummary
    from app.coverage.service import Scope

from app.cli.common import echo_json, engine, settings

Catalogs = Annotated[list[str] | None, typer.Option("--catalog", "-c", help="catalog (repeatable)")]
Platforms = Annotated[
    list[str] | None,
    typer.Option("--platform", "-p", help="platform, any case (repeatable)"),
]
Tactics = Annotated[
    list[str] | None,
    typer.Option("--tactic", "-t", help="tactic: shortname, name or TA id (repeatable)"),
]
Groups = Annotated[
    list[str] | None,
    typer.Option(
        "--groups", "-g", help="groups, software, campaigns: id, name or alias; comma-separated"
    ),
]
Domain = Annotated[str | None, typer.Option(help="enterprise, mobile or ics")]
Version = Annotated[str | None, typer.Option(help="ATT&CK release, e.g. 18.1")]
Json = Annotated[bool, typer.Option("--json")]
Env = Annotated[
    str | None,
    typer.Option("--env", help="environment: count a rule only where its telemetry is collected"),
]


def register(app: typer.Typer) -> None:
    app.command("coverage")(coverage)
    app.command("gaps")(gaps)


def make_scope(
    session: Session,
    domain: str | None,
    version: str | None,
    catalog: list[str] | None,
    platform: list[str] | None,
    tactic: list[str] | None,
    groups: list[str] | None,
    *,
    environment: str | None = None,
) -> Scope:
    """The coverage question the common CLI options ask (shared by coverage, gaps, layer, env
    next). Under an environment the release defaults to the environment's domain."""
    from app.coverage import service as coverage_service

    return coverage_service.make_scope(
        session,
        domain=domain,
        version=version,
        catalogs=catalog,
        platforms=platform,
        tactics=tactic,
        threat=groups,
        environment=environment,
        kb_dir=settings().kb_dir,
    )


def coverage(
    catalog: Catalogs = None,
    platform: Platforms = None,
    tactic: Tactics = None,
    groups: Groups = None,
    domain: Domain = None,
    version: Version = None,
    a: Annotated[list[str] | None, typer.Option(help="compare: catalog(s) of side A")] = None,
    b: Annotated[list[str] | None, typer.Option(help="compare: catalog(s) of side B")] = None,
    env: Env = None,
    json_out: Json = False,
) -> None:
    """Coverage summary (overall, per tactic, per platform, per catalog), or --a/--b comparison;
    with --env also the techniques by effective state (per tactic, system and catalog)."""
    from sqlmodel import Session

    from app.coverage import service as coverage_service

    s = settings()
    with Session(engine(s)) as session:
        scope = make_scope(
            session, domain, version, catalog, platform, tactic, groups, environment=env
        )
        if a or b:
            if not (a and b):
                raise typer.BadParameter("compare needs both --a and --b")
            cmp = coverage_service.compare_catalogs(
                session, scope=scope, a=a, b=b, weights=s.coverage
            )
            if json_out:
                echo_json(cmp)
            else:
                _print_comparison(cmp)
            return
        summary = coverage_service.summary(session, scope=scope, weights=s.coverage)
    if json_out:
        echo_json(summary)
        return
    _print_summary(summary)
    if summary.effective is not None:
        from app.cli.terminal import print_effective_summary

        print_effective_summary(summary.effective)


def _print_comparison(cmp: CatalogComparison) -> None:
    from rich.table import Table

    from app.cli.terminal import print_table

    t = Table(
        "tactic",
        "both",
        "only A",
        "only B",
        "neither",
        title=f"{', '.join(cmp.a)} (A) vs {', '.join(cmp.b)} (B), "
        f"ATT&CK {cmp.domain} {cmp.version}",
    )
    for row in cmp.by_tactic:
        t.add_row(row.tactic, str(row.both), str(row.only_a), str(row.only_b), str(row.neither))
    t.add_row(
        "all",
        str(len(cmp.both)),
        str(len(cmp.only_a)),
        str(len(cmp.only_b)),
        str(len(cmp.neither)),
        style="bold",
    )
    print_table(t, whole=("tactic",))


def _print_summary(summary: CoverageSummary) -> None:
    from rich.console import Console
    from rich.table import Table

    from app.cli.terminal import print_table

    c = Console()
    c.print(
        f"[bold]ATT&CK {summary.domain} {summary.version}[/bold] · catalogs: "
        f"{', '.join(summary.catalogs) or 'none'}"
    )
    for label, cnt in (
        ("techniques", summary.techniques),
        ("sub-techniques", summary.subtechniques),
        ("all", summary.all),
    ):
        c.print(f"{label}: {cnt.covered}/{cnt.total} covered, score > 0 ({cnt.percent}%)")
    t = Table("tactic", "covered", "total", "%")
    for g in summary.by_tactic:
        t.add_row(g.name, str(g.covered), str(g.total), f"{g.percent}")
    print_table(t, c, whole=("tactic",))
    t = Table("catalog", "rules", "rules mapped", "techniques covered (score > 0)", "%")
    for cc in summary.by_catalog:
        t.add_row(
            cc.catalog,
            str(cc.rules),
            str(cc.rules_mapped),
            str(cc.techniques_covered),
            f"{cc.percent}",
        )
    print_table(t, c, whole=("catalog",))


def gaps(
    catalog: Catalogs = None,
    platform: Platforms = None,
    tactic: Tactics = None,
    groups: Groups = None,
    domain: Domain = None,
    version: Version = None,
    collected: Annotated[list[str] | None, typer.Option(help="data components you collect")] = None,
    min_score: Annotated[float, typer.Option(help="weakly covered below this score")] = 0.0,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 25,
    env: Env = None,
    json_out: Json = False,
) -> None:
    """Uncovered and weak techniques ranked by priority, with what would detect them; with
    --env, the techniques not effective there, with their state and missing log sources."""
    from sqlmodel import Session

    from app.cli.terminal import print_environment_gaps, print_gaps
    from app.coverage import service as coverage_service

    s = settings()
    with Session(engine(s)) as session:
        scope = make_scope(
            session, domain, version, catalog, platform, tactic, groups, environment=env
        )
        release = scope.release
        page = coverage_service.gap_page(
            session,
            scope=scope,
            weights=s.coverage,
            collected=collected,
            min_score=min_score,
            limit=limit,
        )
    if json_out:
        echo_json(page)
        return
    title = f"ATT&CK {release.domain} {release.version}"
    if env:
        print_environment_gaps(page, title=f"{title} · environment {env}")
        return
    print_gaps(page, title=title, collected=collected)

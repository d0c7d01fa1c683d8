"""`kbmap diff FROM TO`: what changed between two loaded releases, and what it does to catalogs.

Also renders `kbmap catalog upgrade`'s report, the command a diff usually leads to. Long lists are
cut at --limit rows in the terminal (the count is always whole); --json prints everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import echo_json, engine, settings

if TYPE_CHECKING:
    from rich.console import Console

    from app.catalog.upgrade import UpgradeReport
    from app.refresh.models import CatalogImpact, ReleaseDiff


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)


def diff(
    from_version: Annotated[str, typer.Argument(metavar="FROM", help="older release, e.g. 17.1")],
    to_version: Annotated[str, typer.Argument(metavar="TO", help="newer release, e.g. 18.1")],
    domain: Annotated[str, typer.Option(help="enterprise, mobile or ics")] = "enterprise",
    catalog: Annotated[
        list[str] | None,
        typer.Option("--catalog", "-c", help="catalog (repeatable; default: all of the domain)"),
    ] = None,
    text: Annotated[bool, typer.Option("--text", help="full old and new descriptions")] = False,
    limit: Annotated[int, typer.Option(min=1, help="rows per list in the terminal")] = 25,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Techniques added, reinstated, revoked (with replacement), deprecated, renamed, moved;
    tactics and detection objects added or retired; per catalog, stale mappings and coverage
    before/after."""
    from sqlmodel import Session

    from app.refresh import impact

    s = settings()
    with Session(engine(s)) as session:
        result = impact.release_diff(
            session,
            domain=domain,
            from_version=from_version,
            to_version=to_version,
            catalogs=catalog,
            with_text=text,
            weights=s.coverage,
        )
    if json_out:
        echo_json(result)
    else:
        print_diff(result, limit=limit)


def _cut(items: Sequence[str], limit: int) -> str:
    more = f" … (+{len(items) - limit})" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def print_diff(d: ReleaseDiff, *, limit: int = 25, console: Console | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from app.cli.terminal import print_table

    c = console or Console()
    c.print(Text(f"ATT&CK {d.domain} {d.from_version} → {d.to_version}", style="bold"))
    if d.detection_model_before != d.detection_model_after:
        c.print(f"detection model: {d.detection_model_before} → {d.detection_model_after}")
    counts = Table("change", "count")
    for key, n in d.counts.items():
        if n or key.startswith("techniques_"):
            counts.add_row(key.replace("_", " "), str(n))
    print_table(counts, c)
    t = d.techniques
    if t.revoked:
        table = Table("revoked", "name", "replacement", title="Revoked techniques")
        for r in t.revoked[:limit]:
            chain = " → ".join(r.chain)
            repl = f"{r.replacement} {r.replacement_name}" if r.replacement else f"none ({chain})"
            table.add_row(r.id, r.name, repl)
        print_table(table, c, whole=("revoked",))
    lines = [
        ("added", [f"{x.id} {x.name}" for x in t.added]),
        ("reinstated (deprecated or revoked before)", [f"{x.id} {x.name}" for x in t.reinstated]),
        ("deprecated", [f"{x.id} {x.name}" for x in t.deprecated]),
        ("renamed", [f"{x.id}: {x.old_name} → {x.new_name}" for x in t.renamed]),
        (
            "tactics changed",
            [
                f"{x.id} +{','.join(x.added) or '-'} -{','.join(x.removed) or '-'}"
                for x in t.tactics_changed
            ],
        ),
        (
            "sub-technique changes",
            [
                f"{x.id} {x.change.replace('_', ' ')} ({x.old_parent} → {x.new_parent})"
                for x in t.subtechnique_changed
            ],
        ),
        ("platforms changed", [x.id or "" for x in t.platforms_changed]),
        ("description changed", [x.id or "" for x in t.description_changed]),
        ("tactics added", [f"{x.shortname} ({x.id})" for x in d.tactics.added]),
        ("tactics retired", [f"{x.shortname} ({x.id})" for x in d.tactics.retired]),
    ]
    for label, items in lines:
        if items:
            c.print(Text(f"{label} ({len(items)}): ", style="bold") + Text(_cut(items, limit)))
    if d.tactics.order_before != d.tactics.order_after:
        c.print(f"matrix: {', '.join(d.tactics.order_after)}")
    for impact in d.catalogs:
        _print_impact(c, impact, limit=limit)


def _print_impact(c: Console, impact: CatalogImpact, *, limit: int) -> None:
    from rich.table import Table
    from rich.text import Text

    from app.cli.terminal import print_table

    c.print(
        Text(
            f"catalog {impact.catalog} ({impact.rules} rules, validated against "
            f"{impact.validated_against}): {impact.stale_rules} rules with stale mappings, "
            f"{impact.with_suggestion} with a suggested replacement",
            style="bold",
        )
    )
    if impact.stale:
        table = Table("rule", "written", "stale", "status", "suggested", "new here")
        for s in impact.stale[:limit]:
            sugg = s.suggested or "-"
            table.add_row(
                Text(f"{s.rule_id} {s.rule_name}"),
                s.written,
                s.stale_id,
                s.status,
                sugg + (" (already)" if s.already_resolved else ""),
                "yes" if s.changed_in_this_diff else "",
            )
        print_table(table, c, whole=("written", "stale", "suggested"))
        if len(impact.stale) > limit:
            c.print(f"… {len(impact.stale) - limit} more (--json or --limit for all)")
    cov = Table("tactic", "before", "after", title="covered techniques")
    for row in [("all", impact.coverage_before, impact.coverage_after)] + [
        (g.tactic, g.before, g.after) for g in impact.by_tactic
    ]:
        label, b, a = row
        cov.add_row(
            label,
            f"{b.covered}/{b.total}" if b else "-",
            f"{a.covered}/{a.total}" if a else "-",
        )
    print_table(cov, c, whole=("tactic",))


def print_upgrade_report(report: UpgradeReport, console: Console | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from app.cli.terminal import print_table

    c = console or Console()
    c.print(
        Text(
            f"{report.catalog.name}: upgraded ATT&CK {report.domain} {report.from_version} → "
            f"{report.to_version}: {report.rules} rules kept, {report.rewritten} of "
            f"{report.mappings} mappings rewritten, {report.newly_placed} newly placed",
            style="bold",
        )
    )
    c.print(" · ".join(f"{k} {v}" for k, v in report.outcomes.items()))
    for title, items in (("rewritten", report.changed), ("not placed", report.not_placed)):
        if not items:
            continue
        table = Table("rule", "written", "before", "after", "outcome", "note", title=title)
        for m in items[:50]:
            table.add_row(m.rule_id, m.written, m.before or "-", m.after or "-", m.outcome, m.note)
        print_table(table, c, whole=("rule", "written", "before", "after", "outcome"))
        if len(items) > 50:
            c.print(f"… {len(items) - 50} more (--json for all)")
    if report.unknown_tactics:
        c.print(
            "rule tactics not in this release: "
            + ", ".join(f"{k} ({v})" for k, v in report.unknown_tactics.items())
        )

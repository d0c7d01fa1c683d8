"""Terminal renderings of read models (rich), kept apart from the commands that fetch them."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from app.attack.models import TechniquePage
from app.catalog.models import CatalogRead


def print_technique(page: TechniquePage, console: Console | None = None) -> None:
    """The seed page's layout: header, description, rules, detection, mitigations, threats."""
    c = console or Console()
    flags = " [revoked]" if page.revoked else (" [deprecated]" if page.deprecated else "")
    c.print(Text(f"{page.id}: {page.name}{flags}", style="bold"))
    c.print(
        f"ATT&CK {page.domain} {page.version} · tactics: {', '.join(page.tactics) or '-'} · "
        f"platforms: {', '.join(page.platforms) or '-'}"
    )
    if page.revoked_by:
        c.print(f"Revoked by {page.revoked_by.id}: {page.revoked_by.name}")
    if page.parent:
        c.print(f"Sub-technique of {page.parent.id}: {page.parent.name}")
    if page.subtechniques:
        c.print("Sub-techniques: " + ", ".join(f"{s.id} {s.name}" for s in page.subtechniques))
    c.print(Panel(Text(page.description), title="Description", title_align="left"))

    c.print(Text("Rules that cover the technique", style="bold"))
    if not page.rules and not page.subtechnique_rules:
        c.print("  none in the loaded catalogs")
    for r in page.rules:
        mark = f" (mapped as {r.mapped_as}, remapped)" if r.how == "remapped" else ""
        c.print(Text(f"  [{r.catalog}] {r.package or '-'}: {r.rule_id}: {r.name}: {r.title}{mark}"))
    if page.subtechnique_rules:
        c.print(f"  + {len(page.subtechnique_rules)} rules on its sub-techniques")

    c.print(Text("Detection", style="bold"))
    if page.detection_strategies:
        for s in page.detection_strategies:
            c.print(Text(f"  {s.id} {s.name}"))
            for a in s.analytics:
                sources = "; ".join(
                    f"{ls.data_component.name if ls.data_component else '?'} ← "
                    f"{ls.name} {ls.channel}"
                    for ls in a.log_sources
                )
                c.print(Text(f"    {a.id} [{', '.join(a.platforms)}] {sources}"))
    else:
        table = Table("ID", "Data source and component", "Description", show_lines=True)
        for d in page.data_components:
            ds = f"{d.data_source.name}: " if d.data_source else ""
            table.add_row(
                d.data_source.id if d.data_source else (d.id or ""),
                f"{ds}{d.name}",
                Text(d.description),
            )
        c.print(table)

    c.print(Text("Mitigations", style="bold"))
    table = Table("ID", "Name", "Description", show_lines=True)
    for m in page.mitigations:
        table.add_row(m.id or "", m.name, Text(m.description))
    c.print(table)
    for label, refs in (
        ("Groups", page.groups),
        ("Software", page.software),
        ("Campaigns", page.campaigns),
    ):
        if refs:
            c.print(Text(f"{label} ({len(refs)}): " + ", ".join(f"{r.id}" for r in refs)))


def print_import_report(
    catalog: CatalogRead, *, replaced: bool, console: Console | None = None
) -> None:
    """Counts per outcome with examples: what was placed, remapped, flagged, left unmapped."""
    c = console or Console()
    r = catalog.report
    verb = "replaced" if replaced else "imported"
    c.print(
        Text(
            f"{catalog.name}: {verb} {catalog.rule_count} rules ({r.get('format')}), "
            f"validated against ATT&CK {catalog.domain} {catalog.attack_version}",
            style="bold",
        )
    )
    c.print(
        f"rules with a technique: {r.get('rules_with_technique')} · without: "
        f"{r.get('rules_without_technique')} · distinct techniques covered: "
        f"{r.get('distinct_techniques_covered')} · linked to data components: "
        f"{r.get('rules_linked_to_data_components')} "
        f"({100 * float(r.get('share_linked_to_data_components', 0)):.1f}%)"
    )
    table = Table("outcome", "mappings", "examples (rule: written → technique)")
    examples = r.get("examples", {})
    for outcome, count in r.get("outcomes", {}).items():
        ex = "; ".join(
            f"{e['rule_id']}: {e['written']} → {e['technique'] or '-'}"
            for e in examples.get(outcome, [])[:3]
        )
        table.add_row(outcome, str(count), Text(ex))
    c.print(table)
    if r.get("tactic_mismatches"):
        c.print(f"tactic warnings: {r['tactic_mismatches']}")
    if r.get("unknown_tactics"):
        c.print(
            "tactics not in this release: "
            + ", ".join(f"{k} ({v})" for k, v in r["unknown_tactics"].items())
        )
    if r.get("warning_count"):
        c.print(f"parser warnings: {r['warning_count']}")

"""Terminal renderings of read models (rich), kept apart from the commands that fetch them."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from app.attack.text import Citations, bullet_items, paragraphs, tokens
from app.catalog.models import CatalogRead
from app.core.pages import Page
from app.coverage.models import EffectiveSummary, Gap, Onboarding
from app.environment.models import EnvironmentBrief, EnvironmentRead, Unplaced
from app.technique_page.models import TechniquePage
from app.technique_page.text import by_catalog, rule_line

# C0/C1 controls and DEL (\x1b starts terminal escapes), except tab and newline, which print
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(value: object, *, markup: bool = True) -> str:
    """Untrusted text (rule ids, titles, catalog names, audit fields) made safe for the terminal:
    control characters become U+FFFD so no escape sequence reaches it, and Rich markup is
    escaped so `[link=...]` in a title prints as written. `markup=False` for text put in a
    `Text`, which never reads markup (escaping would show the backslashes)."""
    text = _UNSAFE.sub("\ufffd", str(value))
    return escape(text) if markup else text


def print_table(
    table: Table, console: Console | None = None, *, whole: Collection[str] = ()
) -> None:
    """Print a table with every name whole, whatever the terminal's width (never `…`).

    Boxed when it fits; else without the box, two spaces between columns, where the columns
    headed `whole` (names, ids) stay on one line and other cells wrap at spaces; and when even
    that cannot hold them, one block of `header: value` lines per row.
    """
    c = console or Console()
    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = column.header in whole
    low, high = _column_widths(table, c, whole)
    if sum(high) + 3 * len(high) + 1 <= c.width:
        c.print(table)
        return
    room = c.width - 2 * (len(low) - 1)
    if sum(low) > room:
        _print_records(table, c)
        return
    spare, want = room - sum(low), [h - lo for lo, h in zip(low, high, strict=True)]
    for column, lo, w in zip(table.columns, low, want, strict=True):
        column.width = lo + (spare * w // sum(want) if sum(want) else 0)
    table.box, table.show_edge, table.pad_edge = box.SIMPLE_HEAD, False, False
    table.collapse_padding = True
    c.print(table)


def _column_widths(table: Table, c: Console, whole: Collection[str]) -> tuple[list[int], list[int]]:
    """Per column, the narrowest width that breaks no `whole` cell and folds no word, and the
    natural width."""
    wide = c.options.update_width(1 << 14)
    low, high = [], []
    for column in table.columns:
        sizes = [Measurement.get(c, wide, cell) for cell in column.cells]
        head = Measurement.get(c, wide, column.header)
        keep = column.header in whole
        low.append(max([head.minimum] + [m.maximum if keep else m.minimum for m in sizes]))
        high.append(max([head.maximum] + [m.maximum for m in sizes]))
    return low, high


def _print_records(table: Table, c: Console) -> None:
    """The table as one block per row, `header: value` a line: for terminals too narrow."""
    if table.title:
        c.print(table.title, style="bold")
    headers = [str(column.header) for column in table.columns]
    for row in zip(*(column.cells for column in table.columns), strict=True):
        c.print()
        for header, cell in zip(headers, row, strict=True):
            value = c.render_str(cell) if isinstance(cell, str) else cell
            label = Text(f"{header}: ", style="bold")
            if isinstance(value, Text):
                c.print(label + value)
            else:
                c.print(label, value, sep="")


def print_gaps(
    page: Page[Gap], *, title: str, collected: Sequence[str] | None, console: Console | None = None
) -> None:
    """Gaps by priority, one block each: the technique's full name on its own line (80 columns
    hold the longest), then tactics and threat, then data components, the collected ones first.
    The data components you collect open the output; a cut list says so at the end."""
    c = console or Console()
    c.print(Text(f"{page.total} gaps in {title}", style="bold"))
    if collected:
        names = ", ".join(n.strip() for item in collected for n in item.split(",") if n.strip())
        c.print(Text("collected (--collected): ", style="bold") + Text(names))
    table = Table("priority", "technique", box=box.SIMPLE_HEAD, show_lines=True)
    for g in page.items:
        table.add_row(f"{g.priority}", _gap_lines(g))
    print_table(table, c, whole=("priority",))
    if len(page.items) < page.total:
        c.print(f"showing {len(page.items)} of {page.total} (--limit)")


def _gap_lines(g: Gap) -> Text:
    have = set(g.collected_data_components)
    components = [f"{d} (collected)" for d in g.collected_data_components]
    components += [d for d in g.data_components if d not in have]
    lines = Text(safe(f"{g.id} {g.name}", markup=False), style="bold")
    lines.append(
        f"\n{', '.join(g.tactics)} · used by {g.parts.threat_uses} groups, software and "
        f"campaigns · telemetry {g.parts.telemetry}"
    )
    if components:
        lines.append(safe(f"\ndata components: {', '.join(components)}", markup=False), "dim")
    return lines


def print_technique(page: TechniquePage, console: Console | None = None) -> None:
    """The seed page's layout, in the web page's order so citations get the same numbers:
    header, description, rules per catalog, detection, mitigations, users, references."""
    c = console or Console()
    refs = Citations()
    _print_header(c, page)
    c.print(Panel(attack_text(page.description, refs), title="Description", title_align="left"))
    _print_rules(c, page)
    _print_detection(c, page, refs)
    c.print(Text("Mitigations", style="bold"))
    table = Table("ID", "Name", "Description", show_lines=True)
    for m in page.mitigations:
        table.add_row(
            m.id or "", Text(safe(m.name, markup=False)), attack_text(m.description, refs)
        )
    print_table(table, c, whole=("ID", "Name"))
    for label, used_by in (("Groups", page.groups), ("Software", page.software)):
        if used_by:
            names = ", ".join(f"{r.id} {r.name}" for r in used_by)
            c.print(
                Text(f"{label} ({len(used_by)}): ", style="bold") + Text(safe(names, markup=False))
            )
    if page.campaigns:
        names = ", ".join(f"{r.id} {r.name}" for r in page.campaigns)
        c.print(
            Text(f"Campaigns ({len(page.campaigns)}): ", style="bold")
            + Text(safe(names, markup=False))
        )
    if refs.names:
        c.print(Text("References", style="bold"))
        for n, name in enumerate(refs.names, 1):
            c.print(Text(f"  [{n}] {safe(name, markup=False)}"))


def _print_header(c: Console, page: TechniquePage) -> None:
    flags = " [revoked]" if page.revoked else (" [deprecated]" if page.deprecated else "")
    c.print(Text(safe(f"{page.id}: {page.name}{flags}", markup=False), style="bold"))
    c.print(
        Text(
            f"ATT&CK {page.domain} {page.version} · tactics: {', '.join(page.tactics) or '-'} · "
            f"platforms: {', '.join(page.platforms) or '-'}"
        )
    )
    if page.revoked_by:
        c.print(Text(f"Revoked by {page.revoked_by.id}: {page.revoked_by.name}"))
    if page.parent:
        c.print(Text(f"Sub-technique of {page.parent.id}: {page.parent.name}"))
    if page.subtechniques:
        c.print(
            Text("Sub-techniques: " + ", ".join(f"{s.id} {s.name}" for s in page.subtechniques))
        )


def _print_rules(c: Console, page: TechniquePage) -> None:
    """Per catalog, one seed line per rule (`package: id: name: title`)."""
    c.print(Text("Rules that cover the technique", style="bold"))
    if not page.rules and not page.subtechnique_rules:
        c.print("  none in the loaded catalogs")
    for catalog, rules in by_catalog(page.rules):
        c.print(Text(f"  {safe(catalog, markup=False)} ({len(rules)})", style="bold"))
        for r in rules:
            mark = f" (remapped from {r.mapped_as})" if r.how == "remapped" else ""
            mark += "" if r.enabled else " (disabled)"
            c.print(
                Padding(
                    Text(f"{safe(rule_line(r), markup=False)}{mark}"), (0, 0, 0, 4), expand=False
                )
            )
    if page.subtechnique_rules:
        c.print(f"  + {len(page.subtechnique_rules)} rules on its sub-techniques")


def _print_detection(c: Console, page: TechniquePage, refs: Citations) -> None:
    c.print(Text("Detection", style="bold"))
    for s in page.detection_strategies:
        c.print(Padding(Text(f"{s.id} {s.name}"), (0, 0, 0, 2), expand=False))
        for a in s.analytics:
            sources = "; ".join(
                f"{ls.data_component.name if ls.data_component else '?'} ← {ls.name} {ls.channel}"
                for ls in a.log_sources
            )
            c.print(
                Padding(
                    Text(f"{a.id} [{', '.join(a.platforms)}] {sources}"), (0, 0, 0, 4), expand=False
                )
            )
            if a.description:
                c.print(
                    Padding(
                        attack_text(a.description, refs), (0, 0, 0, 6), style="dim", expand=False
                    )
                )
    if not page.detection_strategies and page.data_components:
        table = Table("ID", "Data source and component", "Description", show_lines=True)
        for d in page.data_components:
            ds = f"{d.data_source.name}: " if d.data_source else ""
            table.add_row(
                d.data_source.id if d.data_source else (d.id or ""),
                Text(f"{ds}{d.name}"),
                attack_text(d.description, refs),
            )
        print_table(table, c, whole=("ID", "Data source and component"))
    if page.detection:
        c.print(Text("Detection notes", style="bold"))
        c.print(attack_text(page.detection, refs))


def attack_text(text: str | None, refs: Citations) -> Text:
    """ATT&CK text as the web page reads it (app.attack.text): paragraphs, bullets, link labels,
    and `[n]` for each citation, numbered by `refs` for the references at the end."""
    out = Text()
    for i, para in enumerate(paragraphs(text)):
        items = bullet_items(para)
        lines = para.splitlines() if items is None else items
        for j, line in enumerate(lines):
            out.append("\n\n" if i and not j else ("\n" if j else ""))
            out.append("• " if items is not None else "")
            _append_line(out, line.strip(), refs)
    return out


def _append_line(out: Text, line: str, refs: Citations) -> None:
    for piece in tokens(line):
        if isinstance(piece, str):
            out.append(safe(piece, markup=False))
        elif piece.kind == "cite":
            out.append(f"[{refs.number(piece.text)}]", style="dim")
        elif piece.kind == "break":
            out.append("\n")
        else:  # link label, code, bold: the words, styled
            style = {"bold": "bold", "code": "italic"}.get(piece.kind, "underline")
            out.append(safe(piece.text, markup=False), style=style)


def print_import_report(
    catalog: CatalogRead, *, replaced: bool, console: Console | None = None
) -> None:
    """Counts per outcome with examples: what was placed, remapped, flagged, left unmapped."""
    c = console or Console()
    r = catalog.report
    verb = "replaced" if replaced else "imported"
    c.print(
        Text(
            f"{safe(catalog.name, markup=False)}: {verb} {catalog.rule_count} rules "
            f"({r.format}), validated against ATT&CK {catalog.domain} "
            f"{catalog.attack_version}",
            style="bold",
        )
    )
    if catalog.release_fallback:
        c.print(
            f"the catalog declares ATT&CK {catalog.release_fallback.declared}, which is not "
            f"loaded: validated against {catalog.release_fallback.validated_against}"
        )
    c.print(
        f"rules naming a technique: {r.rules_with_technique} · without: "
        f"{r.rules_without_technique} · rules mapped: "
        f"{'-' if r.rules_mapped is None else r.rules_mapped} · "
        f"techniques mapped (with a mapped rule): "
        f"{r.distinct_techniques_covered if r.techniques_mapped is None else r.techniques_mapped}"
        f" · linked to data components: {r.rules_linked_to_data_components} "
        f"({100 * r.share_linked_to_data_components:.1f}%)"
    )
    table = Table("outcome", "mappings", "examples (rule: written → technique)")
    for outcome, count in r.outcomes.model_dump().items():
        ex = "; ".join(
            f"{e.rule_id}: {e.written} → {e.technique or '-'}"
            for e in r.examples.get(outcome, [])[:3]
        )
        table.add_row(outcome, str(count), Text(safe(ex, markup=False)))
    print_table(table, c, whole=("outcome",))
    if r.tactic_mismatches:
        c.print(f"tactic warnings: {r.tactic_mismatches}")
    if r.unknown_tactics:
        c.print(
            "tactics not in this release: "
            + ", ".join(f"{safe(k)} ({v})" for k, v in r.unknown_tactics.items())
        )
    if r.warning_count:
        c.print(f"parser warnings: {r.warning_count}")


def print_environment_report(
    env: EnvironmentRead, *, replaced: bool, console: Console | None = None
) -> None:
    """What an environment import placed, and every entry it could not place, with why."""
    c = console or Console()
    r = env.report
    verb = "replaced" if replaced else "imported"
    c.print(
        Text(
            f"{safe(env.name, markup=False)}: {verb} ({r.format}), placed in ATT&CK "
            f"{env.domain} {env.attack_version}",
            style="bold",
        )
    )
    c.print(
        f"systems: {r.systems} · log sources: {r.log_sources} · placed: {r.placed} · "
        f"data components collected: {r.data_components} · unplaced: {len(r.unplaced)}"
    )
    for label, items in (
        ("unplaced log sources", r.unplaced),
        ("placed but not counted", r.not_counted),
        ("unknown platforms", r.unknown_platforms),
    ):
        _print_unplaced(c, label, items)
    if r.unknown_exceptions:
        c.print(f"technique exceptions not in this release: {', '.join(r.unknown_exceptions)}")
    for w in r.warnings:
        c.print(Text(safe(f"warning: {w}", markup=False)))


def _print_unplaced(c: Console, label: str, items: Sequence[Unplaced]) -> None:
    if not items:
        return
    table = Table("written", "systems", "reason", title=f"{label} ({len(items)})")
    for u in items:
        table.add_row(
            Text(safe(u.written, markup=False)),
            Text(safe(", ".join(u.systems), markup=False)),
            Text(safe(u.reason, markup=False)),
        )
    print_table(table, c)


def print_environments(rows: Sequence[EnvironmentBrief], console: Console | None = None) -> None:
    """Loaded environments, one row each."""
    c = console or Console()
    table = Table("name", "format", "systems", "data components", "unplaced", "release", "imported")
    for e in rows:
        table.add_row(
            Text(safe(e.name, markup=False)),
            e.format_id,
            str(e.systems),
            str(e.data_components),
            str(e.unplaced),
            f"{e.domain} {e.attack_version}",
            e.imported_at.strftime("%Y-%m-%d %H:%M"),
        )
    print_table(table, c, whole=("name", "format"))


def print_environment(env: EnvironmentRead, console: Console | None = None) -> None:
    """One environment: per system its platforms and log sources (with the data components
    each provides), then the import report."""
    c = console or Console()
    table = Table("system", "platforms", "log source", "data components", "quality", "counted")
    for s in env.systems:
        for i, ls in enumerate(s.log_sources or [None]):
            first = i == 0
            table.add_row(
                Text(safe(s.name, markup=False)) if first else "",
                ", ".join(s.platforms) if first else "",
                Text(safe(ls.written, markup=False)) if ls else "-",
                Text(safe(", ".join(ls.data_components), markup=False)) if ls else "",
                f"{ls.quality.factor:.2f}" if ls and ls.quality else "",
                ("yes" if ls.counted else "no") if ls else "",
            )
    print_environment_report(env, replaced=False, console=c)
    print_table(table, c, whole=("system",))


def print_effective_summary(eff: EffectiveSummary, console: Console | None = None) -> None:
    """Techniques by effective state: overall, per tactic, per system, per catalog."""
    c = console or Console()
    c.print(Text(f"effective coverage in environment {safe(eff.environment, markup=False)}"))
    states = ("effective", "rule_without_telemetry", "telemetry_only", "blind", "unknown")
    t = Table("group", "total", *states, "% effective", title="by state")
    for row in (eff.techniques, eff.subtechniques, eff.all, *eff.by_tactic):
        t.add_row(
            row.name, str(row.total), *(str(getattr(row, k)) for k in states), f"{row.percent}"
        )
    print_table(t, c, whole=("group",))
    t = Table("system", "platforms", "data components", "effective", "visible", "total", "%")
    for s in eff.by_system:
        t.add_row(
            Text(safe(s.name, markup=False)),
            ", ".join(s.platforms),
            str(s.data_components),
            str(s.effective),
            str(s.visible),
            str(s.total),
            f"{s.percent}",
        )
    print_table(t, c, whole=("system",))
    t = Table(
        "catalog", "rules firing", "without telemetry", "unknown", "techniques effective", "%"
    )
    for k in eff.by_catalog:
        t.add_row(
            k.catalog,
            str(k.rules_firing),
            str(k.rules_without_telemetry),
            str(k.rules_unknown),
            str(k.techniques_effective),
            f"{k.percent}",
        )
    print_table(t, c, whole=("catalog",))


def print_collect_next(
    page: Page[Onboarding], *, title: str, console: Console | None = None
) -> None:
    """What to collect next, ranked: per candidate what it makes effective and unlocks."""
    c = console or Console()
    c.print(Text(f"what to collect next: {safe(title, markup=False)}", style="bold"))
    if not page.total:
        c.print("nothing: no rule in scope waits on a log source this environment lacks")
        return
    t = Table("rank", "system", "data component", "techniques", "value", "rules", "gains")
    for o in page.items:
        gains = ", ".join(o.techniques[:10]) + (" …" if len(o.techniques) > 10 else "")
        t.add_row(
            str(o.rank),
            Text(safe(o.system, markup=False)),
            f"{o.data_component} ({o.data_component_id or '-'})",
            str(o.techniques_gained),
            f"{o.value}",
            str(o.rules_unlocked),
            gains,
        )
    print_table(t, c, whole=("rank", "system"))
    if len(page.items) < page.total:
        c.print(f"showing {len(page.items)} of {page.total} (--limit)")


def print_environment_gaps(page: Page[Gap], *, title: str, console: Console | None = None) -> None:
    """Gaps under an environment: each technique's block with its state and the log sources
    its rules miss."""
    c = console or Console()
    c.print(Text(f"{page.total} gaps in {safe(title, markup=False)}", style="bold"))
    table = Table("priority", "technique", box=box.SIMPLE_HEAD, show_lines=True)
    for g in page.items:
        lines = _gap_lines(g)
        lines.append(f"\nstate: {g.state or '-'}")
        if g.missing_log_sources:
            missing = ", ".join(g.missing_log_sources)
            lines.append(safe(f"\nmissing log sources: {missing}", markup=False), "yellow")
        table.add_row(f"{g.priority}", lines)
    print_table(table, c, whole=("priority",))
    if len(page.items) < page.total:
        c.print(f"showing {len(page.items)} of {page.total} (--limit)")

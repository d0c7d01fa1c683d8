"""Pure: a layer and its release's matrix → an SVG heat map, or an XLSX workbook.

The picture is drawn from the layer alone (colour = the entry's colour, else its score on the
layer's gradient, else white), so the SVG shows exactly what Navigator would. Techniques are cells
under tactic columns in matrix order. A parent whose sub-techniques carry a state (an enabled,
annotated entry: covered, a gap, used by the threat) is expanded as Navigator's
`showSubtechniques` does: those sub-techniques are drawn as indented tiles under it, and the
parent's badge counts them ("3/8 sub"). Sub-techniques without a state stay folded, which keeps the
enterprise matrix readable on one page. Text ink is black or white, whichever contrasts more with
the tile (WCAG 2.x): every tile colour then reaches AA (≥ 4.5:1). All text is escaped.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from app.core.errors import Unavailable
from app.layer.entries import KBMAP_LINK
from app.layer.navigator import Gradient, Layer, Link, MetadataItem, Technique

WHITE, DISABLED = "#ffffff", "#eeeeee"
CELL_W, CELL_H, GAP, MARGIN = 168, 34, 4, 16
SUB_H, SUB_INDENT = 24, 10  # an expanded sub-technique's tile, under its parent
HEADER_H, TOP = 44, 64
FONT = "Helvetica, Arial, sans-serif"
_BAD_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Cell:
    id: str
    name: str
    subtechniques: tuple[str, ...] = ()
    sub_names: tuple[str, ...] = ()  # the sub-techniques' own names, in the same order

    def sub_name(self, k: int) -> str:
        return self.sub_names[k] if k < len(self.sub_names) else self.subtechniques[k]


@dataclass(frozen=True)
class Column:
    """One tactic of the matrix with its techniques (not sub-techniques), already sorted."""

    shortname: str
    name: str
    cells: tuple[Cell, ...] = ()


@dataclass
class Painted:
    """A cell as drawn: fill, text colour, the entry behind it and the sub-techniques that carry
    a state (drawn expanded under it)."""

    fill: str
    ink: str
    entry: Technique | None
    subs: list[PaintedSub] = field(default_factory=list)

    @property
    def subs_marked(self) -> int:
        return len(self.subs)


@dataclass(frozen=True)
class PaintedSub:
    """A sub-technique tile under its expanded parent."""

    id: str
    name: str
    fill: str
    ink: str
    entry: Technique


def _text(value: str) -> str:
    return escape(_BAD_XML.sub("", value), {'"': "&quot;", "'": "&apos;"})


def _rgb(color: str) -> tuple[int, int, int]:
    h = color.lstrip("#")
    if len(h) in (3, 4):
        h = "".join(c * 2 for c in h[:3])
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def gradient_color(gradient: Gradient, score: float) -> str:
    """Navigator's colour for a score: linear RGB between evenly spaced gradient stops."""
    span = gradient.maxValue - gradient.minValue
    t = min(1.0, max(0.0, (score - gradient.minValue) / span))
    stops = [_rgb(c) for c in gradient.colors]
    pos = t * (len(stops) - 1)
    i = min(int(pos), len(stops) - 2)
    f = pos - i
    a, b = stops[i], stops[i + 1]
    return _hex((a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f))


def _linear(c: int) -> float:
    v = c / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def luminance(color: str) -> float:
    """WCAG 2.x relative luminance of an sRGB colour (#rgb or #rrggbb)."""
    r, g, b = (_linear(c) for c in _rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2.x contrast ratio, 1 to 21; AA asks ≥ 4.5 for text."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def ink(fill: str) -> str:
    """Black or white text, whichever contrasts more with `fill`: one of the two always reaches
    4.58:1 (a brightness threshold put white on mid-tones where black reads better)."""
    return "#000000" if luminance(fill) > 0.1791 else "#ffffff"  # where the two ratios meet


def entry_fill(layer: Layer, entry: Technique | None) -> str:
    if entry is None:
        return WHITE
    if not entry.is_enabled:
        return DISABLED
    if entry.color:
        return _hex(_rgb(entry.color))
    if entry.score is not None and layer.gradient is not None:
        return gradient_color(layer.gradient, entry.score)
    return WHITE


def paint(layer: Layer, matrix: Sequence[Column]) -> dict[tuple[str, str], Painted]:
    """(tactic, technique) → how the cell looks; a tactic-specific entry beats a general one."""
    by_key: dict[tuple[str, str | None], Technique] = {
        (e.techniqueID, e.tactic): e for e in layer.techniques
    }

    def find(tid: str, tactic: str) -> Technique | None:
        return by_key.get((tid, tactic)) or by_key.get((tid, None))

    out = {}
    for col in matrix:
        for cell in col.cells:
            entry = find(cell.id, col.shortname)
            fill = entry_fill(layer, entry)
            subs = []
            for k, sid in enumerate(cell.subtechniques):
                s = find(sid, col.shortname)
                if s is not None and s.is_enabled and s.annotated:
                    f = entry_fill(layer, s)
                    subs.append(PaintedSub(sid, cell.sub_name(k), f, ink(f), s))
            out[(col.shortname, cell.id)] = Painted(
                fill=fill, ink=_disabled_ink(fill), entry=entry, subs=subs
            )
    return out


def _disabled_ink(fill: str) -> str:
    """A disabled tile's text is greyed as Navigator greys it, still 4.5:1 on its fill."""
    return "#595959" if fill == DISABLED else ink(fill)


def _tile_height(p: Painted) -> int:
    """A parent's tile plus its expanded sub-technique tiles, with the gap below."""
    return CELL_H + GAP + len(p.subs) * (SUB_H + 2)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def render_svg(layer: Layer, matrix: Sequence[Column], *, subtitle: str = "") -> str:
    """The matrix heat map: title, tactic columns, coloured technique cells, legend."""
    painted = paint(layer, matrix)
    heights = [
        sum(_tile_height(painted[(c.shortname, cell.id)]) for cell in c.cells) for c in matrix
    ]
    width = 2 * MARGIN + max(1, len(matrix)) * (CELL_W + GAP)
    grid_bottom = TOP + HEADER_H + max(heights, default=0)
    legend = _legend_items(layer)
    height = (
        grid_bottom + 40 + 22 * ((len(legend) + 3) // 4) + (40 if _shows_gradient(layer) else 0)
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT}">',
        f"<title>{_text(layer.name)}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{MARGIN}" y="28" font-size="18" font-weight="bold">{_text(layer.name)}</text>',
        f'<text x="{MARGIN}" y="48" font-size="12" fill="#444444">'
        f"{_text(subtitle or layer.description or '')}</text>",
    ]
    for i, col in enumerate(matrix):
        x = MARGIN + i * (CELL_W + GAP)
        out.append(
            f'<g class="tactic" id="tactic-{_text(col.shortname)}">'
            f'<rect x="{x}" y="{TOP}" width="{CELL_W}" height="{HEADER_H - GAP}" fill="#dddddd"/>'
            f'<text x="{x + 6}" y="{TOP + 17}" font-size="12" font-weight="bold">'
            f"{_text(_clip(col.name, 24))}</text>"
            f'<text x="{x + 6}" y="{TOP + 32}" font-size="10" fill="#444444">'
            f"{len(col.cells)} techniques</text></g>"
        )
        y = TOP + HEADER_H
        for cell in col.cells:
            out.append(_cell(x, y, col, cell, painted))
            y += _tile_height(painted[(col.shortname, cell.id)])
    out.append(_legend_svg(layer, legend, grid_bottom + 24, width))
    out.append("</svg>")
    return "\n".join(out)


def _cell(
    x: int, y: int, col: Column, cell: Cell, painted: Mapping[tuple[str, str], Painted]
) -> str:
    p = painted[(col.shortname, cell.id)]
    tip = f"{cell.id} {cell.name}"
    if p.entry is not None and p.entry.comment:
        tip += f"\n{p.entry.comment}"
    if p.entry is not None and p.entry.score is not None:
        tip += f"\nscore {p.entry.score:g}"
    href = _page_href(p.entry)
    return (
        (f'<a href="{_text(href)}">' if href else "")
        + f'<g class="technique" id="cell-{_text(col.shortname)}-{_text(cell.id)}" '
        f'data-technique="{_text(cell.id)}" data-tactic="{_text(col.shortname)}">'
        f"<title>{_text(tip)}</title>"
        f'<rect x="{x}" y="{y}" width="{CELL_W}" height="{CELL_H}" fill="{p.fill}" '
        'stroke="#bbbbbb" stroke-width="0.5"/>'
        f'<text x="{x + 5}" y="{y + 12}" font-size="9" fill="{p.ink}">{_text(cell.id)}</text>'
        f"{_badge(x, y, cell, p)}"
        f'<text x="{x + 5}" y="{y + 25}" font-size="10.5" fill="{p.ink}">'
        f"{_text(_clip(cell.name, 30))}</text></g>"
        + ("</a>" if href else "")
        + _sub_tiles(x, y + CELL_H + 2, col, cell, p)
    )


def _badge(x: int, y: int, cell: Cell, p: Painted) -> str:
    """The "k/n sub" badge: how many of the parent's sub-techniques carry a state (drawn below
    it); a white pill when some do, so the count reads on any tile colour."""
    if not cell.subtechniques:
        return ""
    label = f"{p.subs_marked}/{len(cell.subtechniques)} sub"
    if not p.subs:
        return (
            f'<text x="{x + CELL_W - 6}" y="{y + 12}" font-size="9" text-anchor="end" '
            f'fill="{p.ink}">{label}</text>'
        )
    w = 6 + 5 * len(label)
    return (
        f'<g class="sub-badge"><rect x="{x + CELL_W - w - 3}" y="{y + 3}" width="{w}" '
        'height="12" rx="6" fill="#ffffff" stroke="#333333" stroke-width="0.6"/>'
        f'<text x="{x + CELL_W - 3 - w / 2:g}" y="{y + 12}" font-size="9" text-anchor="middle" '
        f'font-weight="bold" fill="#000000">{label}</text></g>'
    )


def _sub_tiles(x: int, y: int, col: Column, cell: Cell, p: Painted) -> str:
    """The sub-techniques that carry a state, indented under their parent with a side bar (as
    Navigator draws an expanded parent)."""
    if not p.subs:
        return ""
    bar_h = len(p.subs) * (SUB_H + 2) - 2
    out = [f'<rect x="{x + 2}" y="{y}" width="4" height="{bar_h}" fill="#666666"/>']
    for k, s in enumerate(p.subs):
        sy = y + k * (SUB_H + 2)
        href = _page_href(s.entry)
        tip = f"{s.id} {cell.name}: {s.name}" + (f"\n{s.entry.comment}" if s.entry.comment else "")
        out.append(
            (f'<a href="{_text(href)}">' if href else "")
            + f'<g class="subtechnique" id="cell-{_text(col.shortname)}-{_text(s.id)}" '
            f'data-technique="{_text(s.id)}" data-parent="{_text(cell.id)}" '
            f'data-tactic="{_text(col.shortname)}"><title>{_text(tip)}</title>'
            f'<rect x="{x + SUB_INDENT}" y="{sy}" width="{CELL_W - SUB_INDENT}" height="{SUB_H}" '
            f'fill="{s.fill}" stroke="#bbbbbb" stroke-width="0.5"/>'
            f'<text x="{x + SUB_INDENT + 4}" y="{sy + 10}" font-size="8.5" fill="{s.ink}">'
            f"{_text(s.id)}</text>"
            f'<text x="{x + SUB_INDENT + 4}" y="{sy + 20}" font-size="9.5" fill="{s.ink}">'
            f"{_text(_clip(s.name, 30))}</text></g>" + ("</a>" if href else "")
        )
    return "".join(out)


def _page_href(entry: Technique | None) -> str | None:
    """The technique's kbmap page (its layer link, under the configured public URL): a tile of
    the SVG opens it."""
    links = (entry.links or []) if entry is not None else []
    return next(
        (x.url for x in links if isinstance(x, Link) and x.label.startswith(f"{KBMAP_LINK} ")),
        None,
    )


def _shows_gradient(layer: Layer) -> bool:
    return layer.gradient is not None and any(
        e.score is not None and not e.color for e in layer.techniques
    )


def _legend_items(layer: Layer) -> list[tuple[str, str]]:
    items = [(x.label, x.color) for x in layer.legendItems or ()]
    said = {_hex(_rgb(c)) for _, c in items}
    if DISABLED not in said and any(not e.is_enabled for e in layer.techniques):
        items.append(("disabled", DISABLED))
    return items


def _legend_svg(layer: Layer, items: list[tuple[str, str]], y: int, width: int) -> str:
    out = ['<g class="legend">']
    col_w = max(200, (width - 2 * MARGIN) // 4)
    for k, (label, color) in enumerate(items):
        x, yy = MARGIN + (k % 4) * col_w, y + (k // 4) * 22
        out.append(
            f'<rect x="{x}" y="{yy}" width="14" height="14" fill="{_text(color)}" '
            'stroke="#666666" stroke-width="0.5"/>'
            f'<text x="{x + 20}" y="{yy + 11}" font-size="11">{_text(_clip(label, 70))}</text>'
        )
    if _shows_gradient(layer) and layer.gradient is not None:
        g = layer.gradient
        gy = y + 22 * ((len(items) + 3) // 4) + 6
        n = len(g.colors) - 1
        stops = "".join(
            f'<stop offset="{100 * k / n:.1f}%" stop-color="{_hex(_rgb(c))}"/>'
            for k, c in enumerate(g.colors)
        )
        out.append(
            f'<defs><linearGradient id="score-gradient">{stops}</linearGradient></defs>'
            f'<rect x="{MARGIN}" y="{gy}" width="240" height="12" fill="url(#score-gradient)" '
            'stroke="#666666" stroke-width="0.5"/>'
            f'<text x="{MARGIN}" y="{gy + 26}" font-size="10">score {g.minValue:g}</text>'
            f'<text x="{MARGIN + 240}" y="{gy + 26}" font-size="10" text-anchor="end">'
            f"{g.maxValue:g}</text>"
        )
    out.append("</g>")
    return "".join(out)


def technique_names(matrix: Sequence[Column]) -> dict[str, str]:
    """Technique id → its name as ATT&CK writes it; a sub-technique's "Parent: Sub-technique"."""
    names = {}
    for col in matrix:
        for cell in col.cells:
            names[cell.id] = cell.name
            for k, sid in enumerate(cell.subtechniques):
                names[sid] = f"{cell.name}: {cell.sub_name(k)}"
    return names


def render_xlsx(layer: Layer, matrix: Sequence[Column], *, subtitle: str = "") -> bytes:
    """A workbook: the coloured matrix, every entry as a table row, and the legend."""
    try:
        from openpyxl import Workbook
        from openpyxl.styles import Alignment, Font, PatternFill
    except ImportError as exc:  # a runtime dependency; say so instead of a 500
        raise Unavailable("XLSX output needs the openpyxl package") from exc

    painted = paint(layer, matrix)
    wb = Workbook()
    ws = wb.active
    ws.title = "matrix"
    ws.cell(row=1, column=1, value=layer.name).font = Font(bold=True, size=14)
    ws.cell(row=2, column=1, value=subtitle or layer.description or "")
    header = PatternFill(fill_type="solid", start_color="FFDDDDDD", end_color="FFDDDDDD")
    for i, col in enumerate(matrix, start=1):
        h = ws.cell(row=4, column=i, value=col.name)
        h.font, h.fill = Font(bold=True), header
        ws.column_dimensions[h.column_letter].width = 32
        j = 5
        for cell in col.cells:  # a parent, then its sub-techniques that carry a state
            p = painted[(col.shortname, cell.id)]
            subs = f" ({p.subs_marked}/{len(cell.subtechniques)} sub)" if cell.subtechniques else ""
            tiles = [(f"{cell.id} {cell.name}{subs}", p.fill, p.ink)]
            tiles += [(f"  {s.id} {cell.name}: {s.name}", s.fill, s.ink) for s in p.subs]
            for text, fill, ink_ in tiles:
                c = ws.cell(row=j, column=i, value=text)
                argb = "FF" + fill.lstrip("#").upper()
                c.fill = PatternFill(fill_type="solid", start_color=argb, end_color=argb)
                c.font = Font(color="FF" + ink_.lstrip("#").upper(), size=9)
                c.alignment = Alignment(wrap_text=True, vertical="top", indent=int(text[0] == " "))
                j += 1
    ws.freeze_panes = "A5"

    names = technique_names(matrix)
    rows = wb.create_sheet("entries")
    rows.append(
        ["technique", "name", "tactic", "score", "colour", "enabled", "comment", "metadata"]
    )
    for e in layer.techniques:
        meta = "; ".join(
            f"{m.name}: {m.value}" for m in e.metadata or () if isinstance(m, MetadataItem)
        )
        rows.append(
            [
                e.techniqueID,
                names.get(e.techniqueID, ""),
                e.tactic or "",
                e.score,
                entry_fill(layer, e),
                e.is_enabled,
                e.comment or "",
                meta,
            ]
        )
    legend = wb.create_sheet("legend")
    for label, color in _legend_items(layer):
        legend.append([label, color])
        argb = "FF" + _hex(_rgb(color)).lstrip("#").upper()
        legend.cell(row=legend.max_row, column=2).fill = PatternFill(
            fill_type="solid", start_color=argb, end_color=argb
        )
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()

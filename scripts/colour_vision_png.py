"""A PNG as a reader with a colour-vision deficiency sees it (docs pictures, issue 18).

Machado, Oliveira and Fernandes (2009) at severity 1.0, applied in linear RGB: the matrices
tests/layer/colour_vision.py checks the legends with. Pillow and numpy come with the dev
dependencies (mitreattack-python needs them).
Run: python scripts/colour_vision_png.py IN.png OUT.png [deuteranopia|protanopia|tritanopia]
  or: python scripts/colour_vision_png.py --states OUT.svg (the five states, each simulated)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.layer.colour_vision import MACHADO_2009


def simulate(src: Path, dst: Path, deficiency: str) -> None:
    rgb = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64) / 255
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    out = np.clip(lin @ np.array(MACHADO_2009[deficiency]).T, 0, 1)
    srgb = np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055)
    Image.fromarray(np.round(srgb * 255).astype(np.uint8)).save(dst, optimize=True)


def states_svg() -> str:
    """The five effective states' swatches as most people see them and as each dichromat does,
    labelled in the ink the pictures pick (docs/img/effective-states-colour-vision.svg)."""
    from app.layer.kinds.effective import STATES
    from app.layer.render import ink
    from tests.layer.colour_vision import simulate, to_hex

    rows = [("as most people see it", None), *((d, d) for d in MACHADO_2009)]
    w, h = 1100, 40 + 56 * len(rows)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'font-family="Helvetica, Arial, sans-serif">',
        f'<rect width="{w}" height="{h}" fill="#ffffff"/>',
        '<text x="10" y="24" font-size="15" font-weight="bold">The five effective states, '
        "simulated (Machado et al. 2009, severity 1.0)</text>",
    ]
    for i, (label, d) in enumerate(rows):
        y = 40 + i * 56
        out.append(f'<text x="10" y="{y + 28}" font-size="13">{label}</text>')
        for k, (state, (colour, _)) in enumerate(STATES.items()):
            c = colour if d is None else to_hex(simulate(colour, d))
            x = 190 + k * 180
            out.append(
                f'<rect x="{x}" y="{y}" width="172" height="44" fill="{c}" stroke="#888888"/>'
                f'<text x="{x + 8}" y="{y + 27}" font-size="13" fill="{ink(c)}">'
                f"{state.replace('_', ' ')}</text>"
            )
    return "\n".join([*out, "</svg>"])


if __name__ == "__main__":
    if sys.argv[1] == "--states":
        Path(sys.argv[2]).write_text(states_svg() + "\n")
        sys.exit(0)
    simulate(
        Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "deuteranopia"
    )

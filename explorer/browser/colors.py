"""Token highlight colours computed on the server, identical to the frontend's.

Pages render token strips before any JavaScript runs; the D3 token strip then redraws them
with `activationColor` (frontend/src/scales/activationColor.ts: d3.interpolateOranges on
0.12 + 0.78·t, transparent at or below zero, grey for unknown) and `readableTextColor`
(CIELAB lightness < 58 → white text). Computing the same rgb() strings here means the
redraw changes nothing on screen: no flash, no layout shift.
"""

from __future__ import annotations

import math

# d3-scale-chromatic's sequential Oranges (ColorBrewer, 9 classes), interpolated by a basis
# spline per channel as d3.interpolateRgbBasis does.
_ORANGES = [
    "fff5eb",
    "fee6ce",
    "fdd0a2",
    "fdae6b",
    "fd8d3c",
    "f16913",
    "d94801",
    "a63603",
    "7f2704",
]
_CHANNELS = [[int(c[i : i + 2], 16) for c in _ORANGES] for i in (0, 2, 4)]
UNKNOWN = "#9e9e9e"
TRANSPARENT = "transparent"


def _basis(t1: float, v0: float, v1: float, v2: float, v3: float) -> float:
    t2 = t1 * t1
    t3 = t2 * t1
    return (
        (1 - 3 * t1 + 3 * t2 - t3) * v0
        + (4 - 6 * t2 + 3 * t3) * v1
        + (1 + 3 * t1 + 3 * t2 - 3 * t3) * v2
        + t3 * v3
    ) / 6


def _spline(values: list[int], t: float) -> float:
    n = len(values) - 1
    if t <= 0:
        t, i = 0.0, 0
    elif t >= 1:
        t, i = 1.0, n - 1
    else:
        i = math.floor(t * n)
    v1, v2 = values[i], values[i + 1]
    v0 = values[i - 1] if i > 0 else 2 * v1 - v2
    v3 = values[i + 2] if i < n - 1 else 2 * v2 - v1
    return _basis((t - i / n) * n, v0, v1, v2, v3)


def _js_round(x: float) -> int:
    """JavaScript's Math.round (half up), clamped to a byte like d3's rgb formatting."""
    return max(0, min(255, math.floor(x + 0.5)))


def interpolate_oranges(t: float) -> str:
    r, g, b = (_js_round(_spline(ch, t)) for ch in _CHANNELS)
    return f"rgb({r}, {g}, {b})"


def activation_color(value: float | None, max_value: float) -> str:
    """The background of a token with activation `value` when `max_value` is the top colour."""
    if value is None or not math.isfinite(value):
        return UNKNOWN
    t = min(1.0, max(0.0, value / max_value)) if max_value > 0 else 0.0
    return TRANSPARENT if t <= 0 else interpolate_oranges(0.12 + 0.78 * t)


def _lab_lightness(r: int, g: int, b: int) -> float:
    def linear(x: float) -> float:
        x /= 255
        return x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4

    y = 0.2225045 * linear(r) + 0.7168786 * linear(g) + 0.0606169 * linear(b)
    t0, t1 = 4 / 29, 6 / 29
    f = y ** (1 / 3) if y > t1**3 else y / (3 * t1 * t1) + t0
    return 116 * f - 16


def readable_text_color(background: str) -> str | None:
    """#ffffff on dark fills, #111111 on light ones, None (inherit) on transparent."""
    if background == TRANSPARENT:
        return None
    if background.startswith("#"):
        rgb = tuple(int(background[i : i + 2], 16) for i in (1, 3, 5))
    else:
        rgb = tuple(int(part) for part in background[4:-1].split(","))
    return "#ffffff" if _lab_lightness(*rgb) < 58 else "#111111"

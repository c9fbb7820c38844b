"""Number formats of the browser's pages: significant digits, densities as percentages."""

from __future__ import annotations

import math

from django import template

from workers.engine.explain import percent as density_percent

register = template.Library()


@register.filter
def sig(value: float | None, digits: int = 3) -> str:
    """`value` to `digits` significant digits; large values in full with commas (1,235)."""
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{value:,.0f}" if value != 0 and abs(value) >= 10**digits else f"{value:.{digits}g}"
    return text.replace("-", "\u2212")  # a true minus sign, as d3.format writes it


@register.filter
def percent(value: float | None) -> str:
    """A density (fraction of tokens) as a percentage: the one density format of every page
    (workers/engine/explain.percent; frontend/src/format/densityPercent.ts mirrors it)."""
    if value is None or not math.isfinite(value):
        return "–"
    return density_percent(value)


@register.filter
def log_width(value: float | None, floor: float = 1e-6) -> float:
    """Where `value` lies between `floor` and 1 on a log scale, in percent (bars of densities)."""
    if value is None or not math.isfinite(value) or value <= floor:
        return 0.0
    return round(100 * (math.log10(min(value, 1.0)) - math.log10(floor)) / -math.log10(floor), 1)


@register.filter
def bar_width(value: float, scale: float) -> float:
    """|value| as a percentage of |scale| (logit bars before the chart draws)."""
    if not scale or not math.isfinite(value):
        return 0.0
    return round(100 * min(1.0, abs(value) / abs(scale)), 1)


@register.filter
def one_in(value: float | None) -> str:
    """A density as "1 in 2.4k tokens" (how rare it is, which percentages hide)."""
    if value is None or not math.isfinite(value) or value <= 0:
        return "never fires"
    n = 1 / value
    if n < 1.05:
        return "every token"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"1 in {n / size:.2g}{suffix} tokens"
    return f"1 in {n:.2g} tokens" if n < 10 else f"1 in {round(n):,} tokens"


# How each explanation method was made, in words (the stored method is a code).
_METHOD_WORDS = {
    "offline": ("offline label", "from top tokens and logits, no language model"),
    "human": ("written by a person", "a reader's own explanation"),
}


@register.filter
def method_name(method: str) -> str:
    """An explanation's method as a reader says it: "offline label", "LLM (gpt-4o-mini)"."""
    if method.startswith("llm:"):
        return f"LLM ({method[4:]})"
    return _METHOD_WORDS.get(method, (method, ""))[0]


@register.filter
def method_help(method: str) -> str:
    """What the method means, for hover text and its first mention on a page."""
    if method.startswith("llm:"):
        return f"written by the language model {method[4:]} from the top examples"
    return _METHOD_WORDS.get(method, ("", ""))[1]

"""Token strips rendered on the server, the same markup the frontend's tokenStrip draws.

`displayToken` and `tokenKind` (frontend/src/tokens/) are mirrored here so a page shows its
examples before JavaScript loads and the D3 redraw changes nothing. Token text stays plain
text: templates autoescape it.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString, mark_safe

from explorer.browser.colors import activation_color, readable_text_color

_VISIBLE = {"\n": "↵", "\r": "␍", "\t": "⇥"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPECIAL = re.compile(
    r"^(<\|[^|<>]*\|>|</?(s|bos|eos|pad|unk|mask)>|\[(CLS|SEP|PAD|UNK|MASK|BOS|EOS)\])$",
    re.IGNORECASE,
)

# Context widths a reader can pick (tokens each side of the max); None shows the whole example.
CONTEXT_WIDTHS: dict[str, int | None] = {"5": 5, "16": 16, "full": None}
DEFAULT_CONTEXT = "16"


def display_token(token: str) -> str:
    if token == "":
        return "∅"
    if re.fullmatch(r" +", token):
        return "·" * len(token)
    shown = re.sub(r"[\n\r\t]", lambda m: _VISIBLE[m.group()], token)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", shown)


def token_kind(token: str) -> str:
    if _SPECIAL.match(token):
        return "special"
    if re.search(r"[\n\r]", token):
        return "newline"
    if token == "" or re.fullmatch(r"\s+", token):
        return "whitespace"
    return "text"


EXCLUDED_TITLE = "BOS: excluded from statistics"
EXCLUDED_TITLE_ATTR = f' title="{escape(EXCLUDED_TITLE)}"'


@dataclass(frozen=True)
class TokenCell:
    text: str  # as displayed
    kind: str
    value: float
    background: str
    color: str | None
    is_max: bool
    excluded: bool = False  # a BOS token left out of every statistic (shown with its value)

    @property
    def css_class(self) -> str:
        classes = f"token token--{self.kind}"
        if not math.isfinite(self.value):
            classes += " token--unknown"
        if self.is_max:
            classes += " token--max"
        if self.excluded:
            classes += " token--excluded"
        return classes

    @property
    def style(self) -> str:
        style = f"background-color: {self.background};"
        return style + (f" color: {self.color};" if self.color else "")

    @property
    def data_value(self) -> str:
        return repr(self.value) if math.isfinite(self.value) else "NaN"


@dataclass(frozen=True)
class Strip:
    cells: list[TokenCell]
    cut_before: bool
    cut_after: bool

    @property
    def html(self) -> SafeString:
        """The strip's markup, every token escaped. Built here rather than in a template loop:
        a feature page has ~1,000 token cells and the loop would dominate its render time."""
        classes = "token-strip"
        if self.cut_before:
            classes += " token-strip--cut-before"
        if self.cut_after:
            classes += " token-strip--cut-after"
        cells = "".join(
            f'<span class="{c.css_class}" data-value="{c.data_value}" style="{c.style}"'
            f"{EXCLUDED_TITLE_ATTR if c.excluded else ''}>"
            f"{escape(c.text, quote=False)}</span>"
            for c in self.cells
        )
        return mark_safe(f'<span class="{classes}">{cells}</span>')  # every part is escaped above


@functools.lru_cache(maxsize=65536)
def _colors(value: float, max_value: float) -> tuple[str, str | None]:
    """Background and text colour; cached, as float16 activations repeat a lot."""
    bg = activation_color(value, max_value)
    return bg, readable_text_color(bg)


@functools.lru_cache(maxsize=65536)
def _shown(token: str) -> tuple[str, str]:
    return display_token(token), token_kind(token)


def token_window(n: int, centre: int, width: int | None) -> tuple[int, int]:
    """[start, stop) of the tokens within `width` of `centre` (all of them when width is None)."""
    if width is None:
        return 0, n
    return max(0, centre - width), min(n, centre + width + 1)


def strip(
    tokens: list[str],
    values: list[float],
    *,
    max_value: float,
    max_position: int | None,
    width: int | None,
    bos_excluded: bool = False,
) -> Strip:
    """The cells of one strip, cut to `width` tokens either side of `max_position`. With
    `bos_excluded`, position 0 is a BOS token left out of the statistics: it keeps its value
    and colour and is marked `token--excluded` with a title saying so."""
    centre = max_position if max_position is not None else 0
    start, stop = token_window(len(tokens), centre, width)
    cells = []
    for i in range(start, stop):
        v = values[i] if i < len(values) else math.nan
        bg, fg = _colors(v, max_value if max_value > 0 else 1.0)
        text, kind = _shown(tokens[i])
        cells.append(
            TokenCell(
                text=text,
                kind=kind,
                value=v,
                background=bg,
                color=fg,
                is_max=i == max_position,
                excluded=bos_excluded and i == 0,
            )
        )
    return Strip(cells=cells, cut_before=start > 0, cut_after=stop < len(tokens))

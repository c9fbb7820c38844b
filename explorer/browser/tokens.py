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
    if token.isprintable() and token.strip(" "):  # most tokens: nothing to show differently
        return token
    if token == "":
        return "∅"
    if re.fullmatch(r" +", token):
        return "·" * len(token)
    shown = re.sub(r"[\n\r\t]", lambda m: _VISIBLE[m.group()], token)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", shown)


def token_kind(token: str) -> str:
    if token[:1] in ("<", "[") and _SPECIAL.match(token):  # every special form starts so
        return "special"
    if "\n" in token or "\r" in token:
        return "newline"
    if token == "" or token.isspace():  # str.isspace is what the regex \s tests
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


@dataclass(frozen=True)
class Strip:
    """The tokens of one example cut to a width around its max, and how they are drawn."""

    tokens: list[str]  # the shown tokens only
    values: list[float]  # one per shown token (NaN: unknown)
    scale: float  # the value drawn darkest (> 0)
    max_at: int | None  # index into `tokens` of the max, if shown
    excluded_at: int | None  # index into `tokens` of an excluded BOS, if shown
    cut_before: bool
    cut_after: bool

    @property
    def cells(self) -> list[TokenCell]:
        cells = []
        for i, (token, v) in enumerate(zip(self.tokens, self.values, strict=True)):
            bg, fg = _colors(v, self.scale)
            text, kind = _shown(token)
            cells.append(
                TokenCell(
                    text=text,
                    kind=kind,
                    value=v,
                    background=bg,
                    color=fg,
                    is_max=i == self.max_at,
                    excluded=i == self.excluded_at,
                )
            )
        return cells

    @property
    def html(self) -> SafeString:
        """The strip's markup, every token escaped: the markup of `cells`, built from cached
        pieces (a feature page has ~1,000 token cells; per-cell objects or a template loop
        would dominate its render time)."""
        classes = "token-strip"
        if self.cut_before:
            classes += " token-strip--cut-before"
        if self.cut_after:
            classes += " token-strip--cut-after"
        parts = [f'<span class="{classes}">']
        for i, (token, v) in enumerate(zip(self.tokens, self.values, strict=True)):
            kind, text = _cell_text(token)
            finite = math.isfinite(v)
            cls = kind if finite else kind + " token--unknown"
            if i == self.max_at:
                cls += " token--max"
            if i == self.excluded_at:
                cls += " token--excluded"
            attrs = _cell_attrs(v, self.scale) if finite else _UNKNOWN_ATTRS
            title = EXCLUDED_TITLE_ATTR if i == self.excluded_at else ""
            parts.append(f'<span class="token token--{cls}"{attrs}{title}>{text}</span>')
        parts.append("</span>")
        return mark_safe("".join(parts))  # every part is escaped


@functools.lru_cache(maxsize=65536)
def _colors(value: float, max_value: float) -> tuple[str, str | None]:
    """Background and text colour; cached, as float16 activations repeat a lot."""
    bg = activation_color(value, max_value)
    return bg, readable_text_color(bg)


@functools.lru_cache(maxsize=65536)
def _shown(token: str) -> tuple[str, str]:
    return display_token(token), token_kind(token)


@functools.lru_cache(maxsize=65536)
def _cell_text(token: str) -> tuple[str, str]:
    """(kind, the displayed text escaped) of a token's cell."""
    text, kind = _shown(token)
    return kind, escape(text, quote=False)


def _style(background: str, color: str | None) -> str:
    return f"background-color: {background};" + (f" color: {color};" if color else "")


@functools.lru_cache(maxsize=65536)
def _cell_attrs(value: float, scale: float) -> str:
    """The data-value and style attributes of a cell with a finite value."""
    return f' data-value="{value!r}"{_style_attr(activation_color(value, scale))}'


@functools.lru_cache(maxsize=4096)
def _style_attr(background: str) -> str:
    """The style attribute of a cell of this background: a few hundred distinct ones along the
    colour scale, where (value, scale) pairs rarely repeat from one feature to the next."""
    return f' style="{escape(_style(background, readable_text_color(background)))}"'


_UNKNOWN_ATTRS = f' data-value="NaN" style="{escape(_style(*_colors(math.nan, 1.0)))}"'


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
    shown = list(values[start:stop])
    shown += [math.nan] * (stop - start - len(shown))  # values missing at the end: unknown
    return Strip(
        tokens=list(tokens[start:stop]),
        values=shown,
        scale=max_value if max_value > 0 else 1.0,
        max_at=max_position - start
        if max_position is not None and start <= max_position < stop
        else None,
        excluded_at=0 if bos_excluded and start == 0 and stop > 0 else None,
        cut_before=start > 0,
        cut_after=stop < len(tokens),
    )

"""What no untrusted text may hold, checked once where it enters (HTTP, JSON bodies, websockets).

PostgreSQL text cannot store a NUL character (nor can UTF-8 carry an unpaired surrogate, which
JSON's `\\ud800` escapes make), so such a character anywhere in a request would fail deep in a
query or a worker as a server error; and JSON nested past what any message of ours needs makes
the parser recurse until Python's recursion limit ends the request (or the socket) with no
answer. Each check raises `BadInput`, an ApplicationError whose message names the field, so
every interface answers with its usual error shape (400, or a websocket error frame).
"""

from __future__ import annotations

import json
import re
from typing import Any

from explorer.core.exceptions import ApplicationError

# The deepest JSON accepted: every message and body of ours nests at most 4 levels
# (features[i].strength, messages[i].content).
MAX_JSON_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BadInput(ApplicationError):
    code = "bad_input"


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text ("a NUL character", ...), or None when it can."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    return "a NUL character" if found.group() == "\x00" else "an unpaired surrogate"


def check_text(value: str, field: str) -> None:
    """Raises BadInput naming `field` when `value` holds a character text cannot store."""
    problem = text_problem(value)
    if problem is not None:
        raise BadInput(f"{field} contains {problem}, which is not allowed.", code="bad_character")


def _child(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def check_json(value: Any, where: str = "", *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raises BadInput when parsed JSON nests deeper than `max_depth` or a string (key or value)
    holds a character text cannot store; the message names the place (`where` is the root's
    name, "" for a message's own fields). Iterative: any depth is safe to walk."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            check_text(node, path or "the message")
        elif isinstance(node, (dict, list)):
            if depth >= max_depth:
                raise BadInput(
                    f"{path or 'the message'} nests deeper than {max_depth} levels.",
                    code="too_deep",
                )
            if isinstance(node, dict):
                for key, item in node.items():
                    check_text(key, f"a field name in {path or 'the message'}")
                    stack.append((item, _child(path, key), depth + 1))
            else:
                stack.extend((item, _child(path, i), depth + 1) for i, item in enumerate(node))


def json_loads(data: str | bytes, *, what: str = "a message") -> Any:
    """Parse untrusted JSON; raises BadInput "<what> must be JSON" when it is not, or when it
    nests past the interpreter's recursion limit. NaN and Infinity parse (as Python's json
    does): each field's schema says whether it takes them, naming the field when not. Follow
    with `check_json`."""
    try:
        return json.loads(data)
    except RecursionError:  # nested far deeper than MAX_JSON_DEPTH
        message = f"{what} nests deeper than {MAX_JSON_DEPTH} levels."
        raise BadInput(message, code="too_deep") from None
    except ValueError:
        raise BadInput(f"{what} must be JSON", code="invalid_json") from None

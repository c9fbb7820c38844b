"""`{% vite_asset "src/main.ts" %}`: the script and stylesheet tags of a built Vite entry.

`npm run build` (run by `make install`) writes hashed files to frontend/dist/assets/ and a
manifest mapping each source entry to them: frontend/dist/.vite/manifest.json. This tag reads
that manifest (once per build: it is cached by modification time) and emits
`<link rel="stylesheet">` for the entry's CSS, `<link rel="modulepreload">` for the chunks it
imports, and `<script type="module">` for the entry itself. Every URL goes through staticfiles'
`static()`, so whitenoise's manifest storage serves the collected (and compressed) copies
with far-future cache headers in production, and the finders serve dist/ directly in DEBUG.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from django import template
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

_lock = threading.Lock()
# manifest path -> (mtime_ns, parsed manifest); a rebuild changes the mtime and is re-read.
_cache: dict[Path, tuple[int, dict[str, Any]]] = {}


def manifest_path() -> Path:
    """Where the Vite manifest lives: settings.VITE_MANIFEST_PATH, else <FRONTEND_DIST>/.vite/."""
    explicit = getattr(settings, "VITE_MANIFEST_PATH", None)
    if explicit:
        return Path(explicit)
    dist = getattr(settings, "FRONTEND_DIST", None) or Path(settings.BASE_DIR) / "frontend" / "dist"
    return Path(dist) / ".vite" / "manifest.json"


def load_manifest(path: Path | None = None) -> dict[str, Any]:
    """The parsed manifest, read again only when the file changes.

    Raises ImproperlyConfigured, saying how to build it, when the file is missing or not JSON.
    """
    path = path or manifest_path()
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise ImproperlyConfigured(
            f"The frontend is not built: {path} is missing. Run `make install` "
            "(or `cd frontend && npm ci && npm run build`)."
        ) from None
    with _lock:
        cached = _cache.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"The frontend build manifest {path} cannot be read ({exc}). Run `make install`."
            ) from exc
        if not isinstance(manifest, dict):
            raise ImproperlyConfigured(f"The frontend build manifest {path} is not a JSON object.")
        _cache[path] = (mtime, manifest)
        return manifest


def _static_url(name: str) -> str:
    try:
        return static(name)
    except ValueError as exc:
        # ManifestStaticFilesStorage without DEBUG knows only collected files.
        raise ImproperlyConfigured(
            f"{name} is built but not collected: run `python manage.py collectstatic` ({exc})."
        ) from exc


def _collect(
    manifest: dict[str, Any], key: str, css: list[str], chunks: list[str], seen: set[str]
) -> None:
    """Depth-first over static imports, so shared CSS comes before the entry's own."""
    if key in seen:
        return
    seen.add(key)
    chunk = manifest[key]
    for imported in chunk.get("imports", []):
        _collect(manifest, imported, css, chunks, seen)
        file = manifest[imported]["file"]
        if file not in chunks:
            chunks.append(file)
    for file in chunk.get("css", []):
        if file not in css:
            css.append(file)


@register.simple_tag
def vite_asset(entry: str) -> SafeString:
    """The HTML tags that load `entry` (a key of the manifest, e.g. "src/main.ts").

    Raises ImproperlyConfigured when the build is missing or `entry` is not one of its entries.
    """
    manifest = load_manifest()
    chunk = manifest.get(entry)
    if not isinstance(chunk, dict) or not chunk.get("isEntry"):
        entries = sorted(k for k, v in manifest.items() if isinstance(v, dict) and v.get("isEntry"))
        raise ImproperlyConfigured(
            f"{entry!r} is not an entry of the frontend build (entries: {entries}). "
            "Add it to build.rolldownOptions.input in frontend/vite.config.ts "
            "and run `make install`."
        )
    css: list[str] = []
    chunks: list[str] = []
    _collect(manifest, entry, css, chunks, set())
    return format_html(
        "{}{}{}",
        format_html_join("", '<link rel="stylesheet" href="{}">', ((_static_url(f),) for f in css)),
        format_html_join(
            "", '<link rel="modulepreload" href="{}">', ((_static_url(f),) for f in chunks)
        ),
        format_html('<script type="module" src="{}"></script>', _static_url(chunk["file"])),
    )

"""{% vite_asset %} turns the Vite build manifest into script/stylesheet tags via static()."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template

from explorer.core.templatetags import vite

PLAIN_STORAGE = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

MANIFEST = {
    "src/main.ts": {
        "file": "assets/main-abc123.js",
        "src": "src/main.ts",
        "isEntry": True,
        "imports": ["_d3-def456.js"],
        "css": ["assets/main-0f0f0f.css"],
    },
    "_d3-def456.js": {"file": "assets/d3-def456.js", "css": ["assets/d3-111111.css"]},
}


@pytest.fixture
def manifest(tmp_path: Path, settings) -> Path:
    path = tmp_path / ".vite" / "manifest.json"
    path.parent.mkdir()
    path.write_text(json.dumps(MANIFEST))
    settings.VITE_MANIFEST_PATH = path
    settings.STORAGES = PLAIN_STORAGE
    return path


def render(source: str) -> str:
    return Template("{% load vite %}" + source).render(Context())


def test_it_emits_a_module_script_for_the_entry(manifest):
    html = render('{% vite_asset "src/main.ts" %}')
    assert '<script type="module" src="/static/assets/main-abc123.js"></script>' in html


def test_it_emits_stylesheets_for_the_entry_and_its_imports_shared_first(manifest):
    html = render('{% vite_asset "src/main.ts" %}')
    shared = html.index('<link rel="stylesheet" href="/static/assets/d3-111111.css">')
    own = html.index('<link rel="stylesheet" href="/static/assets/main-0f0f0f.css">')
    assert shared < own


def test_it_preloads_imported_chunks(manifest):
    html = render('{% vite_asset "src/main.ts" %}')
    assert '<link rel="modulepreload" href="/static/assets/d3-def456.js">' in html


def test_it_uses_the_staticfiles_storage_for_urls(manifest, settings):
    settings.STATIC_URL = "/assets-cdn/"
    html = render('{% vite_asset "src/main.ts" %}')
    assert 'src="/assets-cdn/assets/main-abc123.js"' in html


def test_it_rereads_the_manifest_only_after_a_rebuild(manifest):
    first = vite.load_manifest(manifest)
    assert vite.load_manifest(manifest) is first
    rebuilt = dict(
        MANIFEST, **{"src/main.ts": dict(MANIFEST["src/main.ts"], file="assets/main-new.js")}
    )
    manifest.write_text(json.dumps(rebuilt))
    mtime = manifest.stat().st_mtime_ns + 1_000_000  # a rebuild within the same clock tick
    os.utime(manifest, ns=(mtime, mtime))
    assert 'src="/static/assets/main-new.js"' in render('{% vite_asset "src/main.ts" %}')


def test_a_missing_build_says_to_run_make_install(tmp_path, settings):
    settings.VITE_MANIFEST_PATH = tmp_path / "nope" / "manifest.json"
    with pytest.raises(ImproperlyConfigured, match="make install"):
        render('{% vite_asset "src/main.ts" %}')


def test_an_unknown_entry_names_the_known_ones(manifest):
    with pytest.raises(ImproperlyConfigured, match=r"'src/other.ts' is not an entry.*src/main.ts"):
        render('{% vite_asset "src/other.ts" %}')


def test_the_real_build_has_the_main_entry(settings):
    """The committed vite.config.ts builds src/main.ts (make install ran `npm run build`)."""
    settings.STORAGES = PLAIN_STORAGE
    html = render('{% vite_asset "src/main.ts" %}')
    assert '<script type="module" src="/static/assets/main-' in html
    assert '<link rel="stylesheet" href="/static/assets/main-' in html


def test_with_manifest_storage_urls_name_the_collected_files(collected_static, settings):
    """Production path: whitenoise's manifest storage maps the build's files to collected copies."""
    html = render('{% vite_asset "src/main.ts" %}')
    src = re.search(r'<script type="module" src="/static/([^"]+)">', html).group(1)
    assert (collected_static / src).is_file()
    assert src != vite.load_manifest()["src/main.ts"]["file"]  # re-hashed by the storage

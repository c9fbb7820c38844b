"""collectstatic only when something changed (the demo's warm start, the test session)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.conf import settings
from django.core.management import call_command


def collectstatic_if_stale() -> bool:
    """Run collectstatic if a source file is newer than STATIC_ROOT's manifest or missing from
    it (a rebuilt frontend); True if it ran."""
    from django.contrib.staticfiles.finders import get_finders

    collected = Path(settings.STATIC_ROOT) / "staticfiles.json"
    try:
        stamp = collected.stat().st_mtime
        known = set(json.loads(collected.read_text())["paths"])
    except (OSError, ValueError, KeyError):
        stamp, known = 0.0, set()
    for finder in get_finders():
        for path, storage in finder.list([]):
            if (
                path.replace(os.sep, "/") not in known
                or os.path.getmtime(storage.path(path)) > stamp
            ):
                call_command("collectstatic", interactive=False, verbosity=0)
                return True
    return False

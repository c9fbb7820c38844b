#!/usr/bin/env python
"""Django's command-line utility. With no DATABASE_URL / REDIS_URL, commands that need the
servers start (or reuse) the embedded ones under var/ first (explorer/core/embedded.py)."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "explorer.settings")
    from explorer.core.embedded import bootstrap

    bootstrap(sys.argv)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

"""`python -m workers.engine ...`: see workers/engine/cli.py."""

import sys

from workers.engine.cli import main

sys.exit(main())

"""The bundle's `side` (side-inspector.spec): PyInstaller freezes a script, not a console_scripts entry point."""

import sys

from side_engine.cli import main

sys.exit(main())

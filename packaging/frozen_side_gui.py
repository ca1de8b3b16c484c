"""The bundle's `side-gui` (side-inspector.spec): PyInstaller freezes a script, not a gui_scripts entry point."""

import sys

from side_gui.app import main

sys.exit(main())

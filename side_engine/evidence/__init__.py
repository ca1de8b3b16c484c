"""Evidence export: a folder that stands on its own, that a reader can check without the audit (docs/EVIDENCE.md).

The folder holds the selected pairs as lossless files (the generated PNG exactly as the audit stored it, the
training image byte for byte as it was on disk), the classifier weights and audit.toml needed to regenerate
every generated image, three views of the same content (grid PNGs for print, report.pdf, a self-contained
report.html), pairs.csv, and manifest.json: every pair's provenance plus the SHA-256 of every other file.
`side verify` (verify.py) re-checks all of it.
"""

from __future__ import annotations

from .context import ExportContext
from .export import export_evidence
from .grid import FONT_DIR, MISSING_GLYPH, font_path, printable
from .manifest import FORMAT, MANIFEST, README, SUMS, manifest_bytes, sums_bytes
from .pdf import MISSING_NOTE
from .selection import Columns, Pair, classifier_name, count, select, select_pairs
from .svg import gamma_plot_svg

__all__ = ["FONT_DIR", "FORMAT", "MANIFEST", "MISSING_GLYPH", "MISSING_NOTE", "README", "SUMS", "Columns",
           "ExportContext", "Pair", "classifier_name", "count", "export_evidence", "font_path", "gamma_plot_svg",
           "manifest_bytes", "printable", "select", "select_pairs", "sums_bytes"]

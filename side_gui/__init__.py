"""SIDE Inspector's desktop app (PySide6 + pyqtgraph); drives side_engine from a worker thread."""

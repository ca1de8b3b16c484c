"""The shipped demo models (one folder each), installed as the package side_engine.demo_models (pyproject.toml's
package-dir), so that importlib.resources finds them in a wheel, an editable install and a PyInstaller bundle alike.
"""

"""The evidence export's fonts, installed as the package side_engine.fonts (pyproject.toml's package-dir).

A package rather than a bare folder so that importlib.resources finds it the same way in a wheel, an editable
install of a clone and a PyInstaller bundle (a folder without this file is a namespace package, which setuptools'
editable finder does not resolve below side_engine).
"""

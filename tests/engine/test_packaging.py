"""The Linux desktop metadata of the bundle (packaging/linux): valid, and saying the version the package has."""

import configparser
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from side_engine import __version__

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "packaging" / "linux"
APP_ID = "org.sideinspector.SideInspector"
DESKTOP = LINUX / f"{APP_ID}.desktop"
METAINFO = LINUX / f"{APP_ID}.metainfo.xml"
DEBIAN_PACKAGE = {"desktop-file-validate": "desktop-file-utils", "appstreamcli": "appstream"}


def validator(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install {DEBIAN_PACKAGE[name]})")
    return path


def test_the_desktop_entry_is_valid():
    done = subprocess.run([validator("desktop-file-validate"), str(DESKTOP)], capture_output=True, text=True,
                          check=False)
    # It exits 0 on hints too; anything it prints is a problem worth fixing.
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_the_metainfo_is_valid():
    # --no-net: the screenshot's URL is not fetched (docs/PACKAGING.md says why it names no real host yet).
    done = subprocess.run([validator("appstreamcli"), "validate", "--no-net", str(METAINFO)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_metainfo_releases_follow_the_changelog_and_the_newest_is_the_installed_version():
    releases = [(r.get("version"), r.get("date")) for r in ET.parse(METAINFO).getroot().iter("release")]
    changelog = re.findall(r"^## (\S+) \((\d{4}-\d\d-\d\d)\)$", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert releases == changelog
    assert releases[0][0] == __version__  # `side --version` and About read the same installed metadata


def test_the_desktop_entry_metainfo_and_icon_name_one_app():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(DESKTOP)
    root = ET.parse(METAINFO).getroot()
    assert root.findtext("id") == APP_ID == entry["Desktop Entry"]["Icon"]
    assert root.findtext("launchable") == DESKTOP.name
    assert entry["Desktop Entry"]["Exec"].split()[0] in [b.text for b in root.iter("binary")]

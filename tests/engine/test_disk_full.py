"""A full disk during a run: one line naming the audit folder and exit code 2, nothing half-written left, and the
audit resumes once there is space, to the same result as a run never stopped.

Three ways to fill it: a PNG write that fails part-way with ENOSPC, SQLite's own "database or disk is full"
(max_page_count), and a real tmpfs too small for the audit (where this machine lets the test mount one)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from side_engine import events as ev
from side_engine.cli import main
from side_engine.errors import InputError
from side_engine.pipeline import AuditPipeline
from side_engine.store import AuditStore

FULL = ("no space left on its disk: free some space, then resume the audit (side run --resume); everything stored so "
        "far is kept")


def report(audit) -> str:
    return subprocess.run([sys.executable, "-m", "side_engine", "report", str(audit), "--json"], capture_output=True,
                          text=True, check=True).stdout


def temporary_files(root) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp")]


@pytest.fixture
def reference(tiny_config, tmp_path):
    out = tmp_path / "never_stopped"
    for _ in AuditPipeline.prepare(tiny_config, out).run():
        pass
    return out


def test_a_png_write_that_fills_the_disk_stops_the_run_in_one_line(tiny_config, tmp_path, monkeypatch, capsys,
                                                                   reference):
    config, out = tmp_path / "audit.toml", tmp_path / "audit"
    config.write_text(tiny_config.to_toml())
    save, calls = Image.Image.save, []

    def fills_the_disk(self, fp, *a, **kw):
        calls.append(fp)
        if len(calls) < 20:
            return save(self, fp, *a, **kw)
        save(self, fp, *a, **kw)
        with open(fp, "r+b") as f:  # part of the file made it to the disk
            f.truncate(os.path.getsize(fp) // 2)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", fills_the_disk)
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {out}: {FULL}"]
    assert temporary_files(out) == []
    stored = AuditStore.open(out)
    assert not stored.complete
    stored.close()

    monkeypatch.setattr(Image.Image, "save", save)
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert report(out) == report(reference)


def test_sqlite_full_mid_extraction_stops_the_run_and_loses_one_batch(tiny_config, tmp_path):
    tiny_config.extraction.n_per_gamma = 24  # rows enough to need new pages
    reference = tmp_path / "never_stopped"
    for _ in AuditPipeline.prepare(tiny_config, reference).run():
        pass
    out = tmp_path / "audit"
    pipeline = AuditPipeline.prepare(tiny_config, out)
    stored_before = None
    with pytest.raises(InputError, match="no space left on its disk") as e:
        for event in pipeline.run():
            if isinstance(event, ev.ImagesGenerated) and stored_before is None:
                db = pipeline.store.db
                stored_before = pipeline.store.image_count()
                # SQLite answers SQLITE_FULL once the file would grow past its present pages, as on a full disk.
                db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    pipeline.store.close()
    assert e.value.path == str(out.resolve())
    store = AuditStore.open(out)
    # The batch in flight rolled back whole; whatever had been committed is there.
    assert store.image_count() >= stored_before and store.image_count() % tiny_config.extraction.batch == 0
    assert not store.complete
    for _ in AuditPipeline.reopen(out).run():
        pass
    assert store.complete
    store.close()
    assert report(out) == report(reference)


def _mount_tmpfs(path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_real_full_tmpfs_then_space_again(tiny_config, tmp_path, reference):
    disk = tmp_path / "small-disk"
    used = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
    # Room for the audit's first files, not for all of them.
    if not _mount_tmpfs(disk, f"{max(used // 2, 64 * 1024) // 1024}k"):
        pytest.skip("cannot mount a tmpfs here (needs root and the mount capability)")
    try:
        config, out = tmp_path / "audit.toml", disk / "audit"
        config.write_text(tiny_config.to_toml())
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        r = subprocess.run([sys.executable, "-m", "side_engine", "run", str(config), "--out", str(out), "--quiet"],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines() == [f"error: {out}: {FULL}"]
        assert temporary_files(out) == []
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        r = subprocess.run([sys.executable, "-m", "side_engine", "run", "--resume", str(out), "--quiet"],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        assert report(out) == report(reference)
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_an_export_that_fills_the_disk_leaves_nothing_and_says_so(audit_copy, tmp_path, monkeypatch, capsys):
    import shutil as shutil_mod

    copy, calls = shutil_mod.copyfile, []

    def fills_the_disk(src, dst, *a, **kw):
        calls.append(dst)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return copy(src, dst, *a, **kw)

    monkeypatch.setattr(shutil_mod, "copyfile", fills_the_disk)
    out = tmp_path / "ev"
    assert main(["export", str(audit_copy), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {out}: no space left on its disk: free some space, then export again; nothing was written there"]
    assert len(calls) > 3 and sorted(p.name for p in tmp_path.iterdir()) == ["audit"]

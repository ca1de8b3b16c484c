"""Property tests (hypothesis): any TOML document, or any bytes, given as a config either loads or is one InputError
line (exit 2 from the CLI), never a traceback; so is `side report` on an audit whose audit.toml or meta is damaged."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import tomli_w

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from side_engine.cli import EXIT_INPUT, EXIT_OK, main  # noqa: E402
from side_engine.config import AuditConfig, load_config  # noqa: E402
from side_engine.errors import InputError  # noqa: E402

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
FEW = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))

SECTIONS = ["model", "data", "labels", "classifier", "tdkd", "clusters", "extraction", "matching", "bands", "runtime"]
KEYS = ["path", "scheduler", "train", "source", "classifier", "width", "blocks", "steps", "batch", "lr", "seed",
        "n_syn", "soft", "k", "cohesion", "min_size", "temperature", "gammas", "n_per_gamma", "eta", "labels",
        "descriptor", "resize", "n_neighbours", "alpha", "chunk", "index", "low", "mid", "high", "device", "dtype",
        "threads", "name", "time_embed_dim", "health_buckets", "relabel_dropped", "ol_ti"]

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.text(max_size=20), st.sampled_from(["~nosuchuser/x", "~", "a\x00b", "\n", "cpu", "cuda:x",
                                                          "pixels", "sscd", "clusters", "exact", "bfloat16"]),
    st.datetimes(), st.dates(), st.times(),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=8)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=10))
tables = st.dictionaries(st.one_of(st.sampled_from(SECTIONS), keys),
                         st.one_of(values, st.dictionaries(keys, values, max_size=6)), max_size=8)


def _valid() -> dict:
    return {"model": {"path": "m"}, "data": {"train": "t"}}


@st.composite
def mutated(draw) -> dict:
    """A valid config with a few keys replaced by anything: the checks after parsing are what this reaches."""
    doc = _valid()
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(SECTIONS))
        doc.setdefault(section, {})[draw(st.sampled_from(KEYS))] = draw(values)
    return doc


def _load_or_one_line(path: Path) -> str:
    """'' when the config loaded, else the error's one line; any other exception fails the test."""
    try:
        cfg = load_config(path)
    except InputError as e:
        assert "\n" not in str(e) and "\r" not in str(e), str(e)
        return str(e)
    assert isinstance(cfg, AuditConfig)
    cfg.to_toml()  # what the audit writes back must serialize
    return ""


@contextmanager
def written(data: bytes | str) -> Iterator[Path]:
    """The data as a config file in a folder of its own, removed afterwards (hypothesis runs many examples in one
    test, so pytest's tmp_path would be shared by all of them)."""
    d = Path(tempfile.mkdtemp(prefix="side-fuzz-"))
    path = d / "audit.toml"
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(data)
    try:
        yield path
    finally:
        shutil.rmtree(d)


@FUZZ
@given(st.text(max_size=300))
def test_any_text_loads_or_is_one_line(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates: not writable as UTF-8 text
    with written(text) as path:
        _load_or_one_line(path)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_load_or_are_one_line(data):
    with written(data) as path:
        _load_or_one_line(path)


@FUZZ
@given(st.one_of(tables, mutated()))
def test_any_toml_document_loads_or_is_one_line(doc):
    with written(tomli_w.dumps(doc)) as path:
        _load_or_one_line(path)


@pytest.mark.parametrize("text", [
    "[" * 5000, "a = " + "[" * 5000 + "]" * 5000, 'model = {path = "~nosuchuser-side/x"}\ndata = {train = "t"}',
    'model = {path = "a\\u0000b"}\ndata = {train = "t"}', '"line\\nbreak" = 1', 'labels = {source = "a\\nb"}',
])
def test_known_hard_cases(text, tmp_path):
    (tmp_path / "c.toml").write_text(text, encoding="utf-8")
    _load_or_one_line(tmp_path / "c.toml")


def test_a_folder_or_unreadable_path_as_config_is_one_line(tmp_path):
    with pytest.raises(InputError):
        load_config(tmp_path)


def _cli(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


@FEW
@given(doc=st.one_of(tables, mutated()))
def test_side_run_on_any_config_exits_2_with_one_line(doc, capsys):
    with written(tomli_w.dumps(doc)) as path:
        code, err = _cli(["run", str(path), "--out", str(path.parent / "out"), "--quiet"], capsys)
        assert code == EXIT_INPUT, err
        assert err.startswith("error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("text", ["[[[", "model = 3", '"a\\nb" = 1', "\x00"])
def test_side_run_subprocess_gives_one_line_and_exit_2(text, tmp_path):
    (tmp_path / "c.toml").write_text(text, encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "side_engine.cli", "run", str(tmp_path / "c.toml"), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr


# ----- report readers -----------------------------------------------------------------------------------------

def _damaged_copy(finished_audit) -> Path:
    dst = Path(tempfile.mkdtemp(prefix="side-fuzz-audit-")) / "a"
    # not the -wal / -shm files: a reader of the session's audit may be making or removing them just now
    shutil.copytree(finished_audit, dst, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    return dst


def _report_exits_cleanly(audit: Path, capsys) -> None:
    for argv in (["report", str(audit)], ["report", "--json", str(audit)]):
        code, err = _cli(argv, capsys)
        assert code in (EXIT_OK, EXIT_INPUT), err
        if code == EXIT_INPUT:
            assert err.startswith("error: ") and err.count("\n") == 1, err


@FEW
@given(st.one_of(st.text(max_size=200), tables.map(tomli_w.dumps), mutated().map(tomli_w.dumps)))
def test_report_on_a_damaged_audit_toml_is_one_line(finished_audit, capsys, text):
    audit = _damaged_copy(finished_audit)
    try:
        (audit / "audit.toml").write_text(text, encoding="utf-8", errors="replace")
        _report_exits_cleanly(audit, capsys)
    finally:
        shutil.rmtree(audit.parent, ignore_errors=True)


def _meta_keys(audit: Path) -> list[str]:
    db = sqlite3.connect(audit / "audit.sqlite")
    try:
        return [k for (k,) in db.execute("SELECT key FROM meta ORDER BY key")]
    finally:
        db.close()


@FEW
@given(data=st.data())
def test_report_on_damaged_meta_is_one_line(finished_audit, capsys, data):
    audit = _damaged_copy(finished_audit)
    keys = _meta_keys(audit)
    try:
        db = sqlite3.connect(audit / "audit.sqlite")
        for _ in range(data.draw(st.integers(1, 3))):
            key = data.draw(st.sampled_from(keys))
            value = data.draw(st.one_of(
                st.text(max_size=30), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.none(),
                st.binary(max_size=10), st.sampled_from(["[]", "{}", "null", "-1", "1e999"])))
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
        db.commit()
        db.close()
        _report_exits_cleanly(audit, capsys)
    finally:
        shutil.rmtree(audit.parent, ignore_errors=True)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "drop_meta"])
def test_report_on_a_damaged_database_is_one_line(finished_audit, capsys, damage):
    audit = _damaged_copy(finished_audit)
    try:
        db_path = audit / "audit.sqlite"
        if damage == "truncate":
            db_path.write_bytes(db_path.read_bytes()[:3000])
        elif damage == "garbage":
            db_path.write_bytes(b"not a database" * 100)
        else:
            with sqlite3.connect(db_path) as db:
                db.execute("DROP TABLE meta")
        _report_exits_cleanly(audit, capsys)
    finally:
        shutil.rmtree(audit.parent, ignore_errors=True)


@pytest.mark.parametrize("n_train", ["4611686018427387904", "1000000000", "17"])
def test_a_training_count_the_audit_does_not_bear_out_is_damage(finished_audit, capsys, n_train):
    """Found by the fuzz test above in a fresh clone: a huge n_train had every scoring allocate a flag per claimed
    training image (MemoryError, or minutes for 10^9)."""
    audit = _damaged_copy(finished_audit)
    try:
        with sqlite3.connect(audit / "audit.sqlite") as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'n_train'", (n_train,))
        for argv in (["report", str(audit)], ["report", "--json", str(audit)]):
            code, err = _cli(argv, capsys)
            assert code == EXIT_INPUT and err == (
                f"error: {audit}: audit is damaged, cannot report it (ValueError: n_train {n_train} disagrees with "
                "the training images the audit recorded)\n")
    finally:
        shutil.rmtree(audit.parent, ignore_errors=True)

"""An audit on read-only media: `side report` reads it as ever; a resume or a verdict is refused in one line."""

from __future__ import annotations

import pytest

from side_engine.cli import main
from side_engine.errors import InputError
from side_engine.store import AuditStore

from helpers import read_only_view


def test_a_read_only_audit_reports_and_refuses_to_be_written(audit_copy, tmp_path, capsys):
    assert main(["report", str(audit_copy), "--json"]) == 0
    writable = capsys.readouterr().out
    with read_only_view(audit_copy, tmp_path / "ro") as view:
        assert main(["report", str(view), "--json"]) == 0
        assert capsys.readouterr().out == writable.replace(str(audit_copy.resolve()), str(view))
        assert main(["run", "--resume", str(view), "--quiet"]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"error: {view}: is read-only: the audit can be viewed and reported, not run or resumed there"]
        store = AuditStore.open(view)
        with pytest.raises(InputError, match="read-only: verdicts cannot be saved"):
            store.set_verdict(store.images()[0].id, "copy")
        store.close()

"""The ledger speaks for itself: SQLite's errors leave it as LedgerError, and nothing above it imports sqlite3."""

from __future__ import annotations

import ast
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import pipeline
from pipeline import UserInputError
from pipeline._errors import LedgerDamaged, LedgerError
from pipeline.ledger import Ledger, RunInfo
from pipeline.ledger._file import connect_read_only, side_files

PACKAGE = Path(pipeline.__file__).parent


def imports_sqlite3(source: Path) -> bool:
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        if any(name == "sqlite3" or name.startswith("sqlite3.") for name in names):
            return True
    return False


def test_no_module_outside_the_ledger_imports_sqlite3() -> None:
    importing = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if imports_sqlite3(p))
    assert importing, "the ledger itself imports sqlite3: the walk must find it"
    assert [p for p in importing if not p.startswith("ledger/")] == []


def test_a_failed_write_is_a_ledger_error_with_its_own_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger.open(path).close()
    with Ledger.open_read_only(path) as ledger, pytest.raises(LedgerError) as failed:
        ledger.begin_run(RunInfo(*"abcdefghi"), 1)  # a read-only connection: SQLite refuses the write
    assert not isinstance(failed.value, (sqlite3.Error, UserInputError, LedgerDamaged))
    assert failed.value.exit_code == 6
    assert str(failed.value) == f"{path}: cannot write the ledger (attempt to write a readonly database)"
    with Ledger.open_read_only(path) as ledger:
        assert ledger.runs() == []  # nothing of it was written


def test_a_damaged_ledger_is_a_ledger_error_too() -> None:
    assert issubclass(LedgerDamaged, LedgerError) and LedgerDamaged("x").exit_code == 6


def test_the_wal_vanishing_while_a_reader_opens_the_ledger_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.sqlite"
    wal, _ = side_files(path)
    with Ledger.open(path) as ledger:
        ledger.begin_run(RunInfo(*"abcdefghi"), 1)  # waits for the open's own check: no other reader now
        assert wal.stat().st_size > 0
        real_stat, looks = os.stat, []

        def vanishing(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
            """The -wal is there at the first look and gone after it, as when the last writer closes."""
            if os.fspath(target) == str(wal):
                looks.append(target)
                if len(looks) > 1:
                    raise FileNotFoundError(2, "No such file or directory", str(wal))
            return real_stat(target, *args, **kwargs)

        monkeypatch.setattr(os, "stat", vanishing)
        db = connect_read_only(path)
        monkeypatch.setattr(os, "stat", real_stat)
        try:
            assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        finally:
            db.close()
    assert len(looks) == 1


def test_a_file_that_is_no_database_is_a_usage_error_not_a_ledger_error(tmp_path: Path) -> None:
    path = tmp_path / "bookings.csv"
    path.write_bytes(b"external_id,booking_no\n" * 200)  # the export given where the ledger belongs
    path.chmod(0o600)
    for opening in (Ledger.open, Ledger.open_read_only):
        with pytest.raises(UserInputError, match="not a cws-pipeline ledger") as refused:
            opening(path)
        assert not isinstance(refused.value, LedgerError) and refused.value.exit_code == 2

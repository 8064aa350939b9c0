"""One table of exit codes: every error, run result, status verdict, check and audit ends with an ExitCode, and
docs/running.md's table is the one generated from it."""

from __future__ import annotations

import ast
import signal
from pathlib import Path

import pipeline
from pipeline import CWSPipelineError, ExitCode, RunResult
from pipeline.cli.reference import EXIT_CODES_BEGIN, EXIT_CODES_END, exit_code_table
from pipeline.review import STATUS_EXIT_CODES, AuditResult

from .sites import recorded_run

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pipeline"


def _errors(cls: type[CWSPipelineError]) -> list[type[CWSPipelineError]]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in _errors(direct))]


def test_every_error_exits_with_a_code_from_the_table() -> None:
    found = {error.__name__: error.exit_code for error in _errors(CWSPipelineError)}
    assert {"UserInputError", "LedgerError", "LedgerLocked", "OutsideWindow"} <= set(found)
    assert all(isinstance(code, ExitCode) for code in found.values()), found
    assert found["UserInputError"] is ExitCode.USAGE and found["LedgerLocked"] is ExitCode.LOCKED


def test_signals_exit_as_a_shell_reports_them() -> None:
    assert ExitCode.INTERRUPTED == 128 + signal.SIGINT
    assert ExitCode.TERMINATED == 128 + signal.SIGTERM


def test_status_speaks_the_nagios_convention_under_its_own_names() -> None:
    assert STATUS_EXIT_CODES == {
        "ok": ExitCode.OK, "attention": ExitCode.ATTENTION, "problem": ExitCode.PROBLEM, "unknown": ExitCode.UNKNOWN,
    }  # fmt: skip
    assert (int(ExitCode.PROBLEM), int(ExitCode.UNKNOWN)) == (2, 3)  # what monitoring reads as CRITICAL, UNKNOWN


def test_a_run_result_and_an_audit_end_with_members_of_the_table(tmp_path: Path) -> None:
    assert RunResult(recorded_run(1, "finished", 0), tmp_path / "l").exit_code is ExitCode.OK
    stopped = recorded_run(1, "stopped", 3)
    assert RunResult(stopped, tmp_path / "l", security_stop="unverified").exit_code is ExitCode.SECURITY_STOP
    assert RunResult(recorded_run(1, "finished", 1), tmp_path / "l", new_attention=1).exit_code is ExitCode.ATTENTION
    assert AuditResult(tmp_path / "l").exit_code is ExitCode.OK
    assert AuditResult(tmp_path / "l", damaged="bad page").exit_code is ExitCode.ATTENTION


def test_no_code_outside_the_table_decides_an_exit_code_by_number() -> None:
    """`sys.exit(3)`, `ctx.exit(1)`, `exit_code = 2` or `return 1` in an exit_code property: each a second table."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "exit":
                numbers = [arg for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, int)]
                found += [f"{path.name}:{node.lineno}" for _ in numbers]
            if isinstance(node, ast.FunctionDef) and node.name == "exit_code":
                found += [
                    f"{path.name}:{ret.lineno}" for ret in ast.walk(node)
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Constant)
                ]  # fmt: skip
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "exit_code" for t in node.targets):
                found += [f"{path.name}:{node.lineno}"] if isinstance(node.value, ast.Constant) else []
    assert found == []


def test_every_number_in_the_table_has_its_meaning_written_down() -> None:
    table = exit_code_table()
    for name, member in ExitCode.__members__.items():
        assert f"| **{int(member)}** |" in table and f"`{name}`" in table, name


def test_the_docs_table_of_exit_codes_is_the_generated_one() -> None:
    text = (ROOT / "docs" / "running.md").read_text(encoding="utf-8")
    section = text[text.index(EXIT_CODES_BEGIN) : text.index(EXIT_CODES_END) + len(EXIT_CODES_END) + 1]
    assert section == exit_code_table(), "run: python -m pipeline.cli.reference docs/running.md"


def test_the_table_is_a_public_name() -> None:
    assert "ExitCode" in pipeline.__all__ and repr(ExitCode.OK) == "<ExitCode.OK: 0>"

"""The shape of the code, checked: small functions, and SQL only in the ledger package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"
MAX_FUNCTION_LINES = 60


def functions(path: Path) -> list[tuple[str, int]]:
    """Each function or method in the module with its length in lines (decorators excluded, docstring included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]


def test_no_function_is_longer_than_60_lines() -> None:
    too_long = {
        (path.relative_to(PACKAGE).as_posix(), name): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, lines in functions(path)
        if lines > MAX_FUNCTION_LINES
    }
    assert too_long == {}


def test_the_length_check_measures_a_long_function(tmp_path: Path) -> None:
    module = tmp_path / "long.py"
    module.write_text("def f():\n" + "    x = 1\n" * 70)
    assert functions(module) == [("f", 71)]


# SQL is written in capitals here; "pragma: no cover" is not SQL.
_SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE|PRAGMA\s+[a-z_]+)"
)
# Modules outside the ledger package that still hold SQL, each to move into the ledger; this list only shrinks.
SQL_NOT_YET_MOVED: set[str] = set()


def test_sql_lives_in_the_ledger_package() -> None:
    holding_sql = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "ledger" and _SQL.search(path.read_text(encoding="utf-8"))
    }
    assert holding_sql <= SQL_NOT_YET_MOVED, holding_sql - SQL_NOT_YET_MOVED


def test_the_docs_layout_table_names_every_stage_module() -> None:
    readme = (PACKAGE.parent / "docs" / "development.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `pipeline/(\w+)/` \|[^|]*\|(.*)\|$", readme, re.M)}
    stages = [p for p in sorted(PACKAGE.iterdir()) if (p / "__init__.py").is_file() and p.name not in ("cli", "tools")]
    unnamed = [
        f"{stage.name}/{module.name}"
        for stage in stages
        for module in sorted(stage.glob("_*.py"))
        if module.name != "__init__.py" and f"`{module.name}`" not in rows.get(stage.name, "")
    ]
    assert len(rows) >= len(stages) and unnamed == [], "name each module in the layout table of docs/development.md"


MAX_DELIVERY_MODULES = 8  # one per seam: transport, decisions, engine, pacing, run, configuration, check, by hand


def test_delivery_is_a_few_modules_each_saying_its_seam_in_one_line() -> None:
    modules = sorted(p for p in (PACKAGE / "delivery").glob("*.py") if p.name != "__init__.py")
    docstrings = {p.name: ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) or "" for p in modules}
    assert len(modules) <= MAX_DELIVERY_MODULES, [p.name for p in modules]
    assert {name: doc for name, doc in docstrings.items() if len(doc.splitlines()) != 1 or len(doc) < 40} == {}

"""The stage layering is checked by import-linter: it passes on the package and fails on a wrong import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))  # installed with the test extras
STAGES = ("protocol", "source", "mapping", "ledger", "delivery", "review", "simulator", "tools", "cli")


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the `pipeline` package found in PROJECT, with PROJECT's pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(project / "pyproject.toml"), "--no-cache"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def copy_of_project(tmp_path: Path) -> Path:
    """The package and its pyproject.toml copied to a temp dir, to break on purpose."""
    shutil.copytree(ROOT / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(module: Path, statement: str) -> None:
    """Append an import to a module of the copy."""
    module.write_text(module.read_text(encoding="utf-8") + f"\n{statement}\n", encoding="utf-8")


def test_the_folder_listing_shows_the_stages() -> None:
    packages = {p.name for p in (ROOT / "pipeline").iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(STAGES)


def test_the_package_keeps_its_import_contracts() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        ("protocol/_signing.py", "from ..delivery import RunConfig", "The stages are layered"),
        ("mapping/_dates.py", "from ..ledger import Ledger", "The stages are layered"),
        ("simulator/_patients.py", "from ..ledger import Ledger", "The local CWS server plays CorEMR"),
        ("delivery/_pacing.py", "from ..simulator import CWSServer", "The pipeline never depends on the local"),
        ("review/_retention.py", "from ..ledger._entries import now_iso", "A stage's private modules are its own"),
    ],
)
def test_a_wrong_import_breaks_the_build(copy_of_project: Path, module: str, statement: str, contract: str) -> None:
    add_import(copy_of_project / "pipeline" / module, statement)
    done = lint_imports(copy_of_project)
    assert done.returncode != 0
    broken = done.stdout.split("Broken contracts", 1)[1]
    assert contract in broken, done.stdout
    assert statement.split()[1].lstrip(".") in broken  # names the import that broke it

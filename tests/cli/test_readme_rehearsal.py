"""The README's set-up, steps 1, 3 and 4, run as written: keys, the mapping from the sample, and a rehearsal against
the local server started by its own command, with the rehearsal configuration the README shows."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import pipeline

pytestmark = pytest.mark.slow  # real processes: the local server and every command the steps show

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def step(title: str) -> str:
    """One set-up step of the README, from its heading to the next heading."""
    return README.read_text(encoding="utf-8").split(f"\n### {title}\n", 1)[1].split("\n#", 1)[0]


def blocks(text: str, kind: str) -> list[list[str]]:
    """The lines of each ```KIND block in TEXT, comments after two spaces removed."""
    return [
        [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]
        for block in re.findall(rf"```{kind}\n(.*?)```", text, re.S)
    ]


def as_written(line: str) -> str:
    """A README line with only what a test must change: where this checkout is, and 2048-bit keys (faster)."""
    line = line.replace("/path/to/cws-pipeline", str(ROOT))
    return re.sub(r"(cws-pipeline keygen \S+)", r"\1 --bits 2048", line)


def test_the_readme_rehearsal_delivers_the_export_once_through_the_local_server(tmp_path: Path) -> None:
    venv_bin = Path(sys.executable).parent  # the README's `export PATH=/srv/cws/.venv/bin:$PATH`
    env = {**os.environ, "PATH": f"{venv_bin}:/usr/bin:/bin", "PYTHONPATH": str(Path(pipeline.__file__).parents[1])}

    def sh(line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", "-c", as_written(line)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, check=False)  # fmt: skip

    ((keygen,),) = blocks(step("1. Keys"), "sh")
    mapping_lines = blocks(step("3. The mapping, checked with `validate`"), "sh")[0]
    assert sh(keygen).returncode == 0
    assert sh(mapping_lines[0]).returncode == 0  # mkdir mappings exports && cp the sample mapping
    export = tmp_path / "exports" / "bookings.csv"
    export.write_bytes((ROOT / "sample_data" / "bookings.csv").read_bytes())
    assert sh(mapping_lines[1]).returncode == 1  # validate: the sample's deliberately invalid rows, in rejects.csv
    with (tmp_path / "rejects.csv").open(encoding="utf-8", newline="") as rejects:
        invalid = {int(row["line"]) for row in csv.DictReader(rejects)}
    lines = export.read_text(encoding="utf-8").splitlines(keepends=True)
    export.write_text("".join(x for n, x in enumerate(lines, 1) if n not in invalid), encoding="utf-8")
    assert (len(invalid), sh(mapping_lines[1]).returncode) == (7, 0)  # "until every row is valid"

    rehearsal = step("4. A rehearsal against the local server")
    set_up, runs = blocks(rehearsal, "sh")
    ((config,),) = [["\n".join(block)] for block in blocks(rehearsal, "toml")]
    *preparation, simulate = set_up
    for line in preparation:
        done = sh(line)
        assert done.returncode == 0, (line, done.stderr)
    assert simulate.startswith("cws-pipeline simulate --port 8765 ")
    command = ["/bin/sh", "-c", "exec " + simulate.replace("--port 8765", "--port 0")]
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().rsplit(" ", 1)[1].strip()  # CWS simulator listening on http://127.0.0.1:P
        port = url.rsplit(":", 1)[1]
        (tmp_path / "rehearsal.toml").write_text(config.replace(":8765", f":{port}") + "\n", encoding="utf-8")
        first, again, report = (sh(line) for line in runs)
        counters = httpx.get(f"{url}/_simulator/counters", timeout=30).json()
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert first.returncode == 0, first.stdout + first.stderr  # every row delivered
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"skipped +233\n", again.stdout), again.stdout  # -v: the second run sent nothing
    assert report.returncode == 0 and "Traceback" not in report.stdout + report.stderr
    assert len(counters["creates"]) == 233 and set(counters["creates"].values()) == {1}  # each patient once
    assert (tmp_path / "rehearsal.sqlite").stat().st_mode & 0o777 == 0o600

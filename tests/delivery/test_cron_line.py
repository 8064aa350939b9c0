"""The README's crontab line works as cron runs it (an empty environment but PATH=/usr/bin:/bin), and its systemd
units run the same command and pass systemd's own check."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..sites import Site, booking_rows

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_cron_command() -> str:
    """The command part of the README's crontab line (after the five time fields)."""
    block = README.read_text(encoding="utf-8").split("```cron\n", 1)[1].split("```", 1)[0]
    line = next(line for line in block.splitlines() if line and not line.startswith("#"))
    return re.split(r"\s+", line, maxsplit=5)[5]


def test_the_readme_cron_line_delivers_under_crons_bare_environment(site: Site) -> None:
    command = readme_cron_command()
    installed = Path(sys.executable).with_name("cws-pipeline")  # this venv's command, by its full path
    command = command.replace("/srv/cws/.venv/bin/cws-pipeline", str(installed)).replace("/srv/cws", str(site.dir))
    command = command.replace("\\%", "%")  # a crontab escapes % as \%
    cron_env = {"PATH": "/usr/bin:/bin", "HOME": str(site.dir), "SHELL": "/bin/sh", "LOGNAME": "cron"}
    today = subprocess.run(["date", "+%F"], env=cron_env, capture_output=True, text=True, check=True).stdout.strip()
    (site.dir / "exports").mkdir()
    shutil.copy(site.write_csv(booking_rows(4)), site.dir / "exports" / f"bookings-{today}.csv")
    (site.dir / "mappings").mkdir()
    shutil.copy(site.mapping, site.dir / "mappings" / "county.toml")
    assert site.config.name == "cws.toml"

    done = subprocess.run(["/bin/sh", "-c", command], env=cron_env, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")  # all delivered: cron mails nothing
    assert sorted(site.server.patients()) == [f"P{i:06d}" for i in range(1, 5)]
    assert (site.dir / "errors.csv").read_text(encoding="utf-8").splitlines() == ["line,state,reason"]


def readme_units() -> dict[str, str]:
    """The README's systemd unit files by name (from each ```ini block's first line, a comment naming the file)."""
    blocks = re.findall(r"```ini\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return {block.splitlines()[0].rsplit("/", 1)[1]: block for block in blocks}


def test_the_readme_systemd_service_runs_the_cron_lines_command() -> None:
    service = readme_units()["cws-pipeline.service"]
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    shell = re.fullmatch(r"ExecStart=/bin/sh -c '(.*)'", exec_start)
    assert shell is not None, exec_start  # $(date) needs a shell: systemd runs no command substitution
    as_systemd_runs_it = shell.group(1).replace("$$", "$").replace("%%", "%")  # a unit file's escapes
    cron = readme_cron_command().replace("\\%", "%")
    assert "WorkingDirectory=/srv/cws" in service.splitlines() and cron.startswith("cd /srv/cws && ")
    assert as_systemd_runs_it == "exec " + cron.removeprefix("cd /srv/cws && ")


def test_the_readme_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units = readme_units()
    assert sorted(units) == ["cws-pipeline.service", "cws-pipeline.timer"]
    for name, text in units.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    verify = ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / name) for name in sorted(units))]
    done = subprocess.run(verify, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr  # a setting it ignores is a warning on stderr

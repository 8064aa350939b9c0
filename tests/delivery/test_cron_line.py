"""The README's crontab line works as cron runs it: an empty environment but PATH=/usr/bin:/bin."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

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

"""Logging at the boundaries: silent unless asked; `-vv --log-format json` gives a collector one JSON object per
line (each request, each retry, the run's start and end) and never a patient's name or birth date."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import Fault, Ledger
from pipeline._errors import LedgerError
from pipeline._logging import LOG_FORMATS, JsonLines, configure_logging, stop_logging
from pipeline.cli import LOG_FORMATS as cli_formats
from pipeline.ledger import RunInfo

from ..sites import Site, people


def cws(site: Site, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`cws-pipeline ARGS` in a fresh process, as cron or a systemd unit runs it (no terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)], cwd=site.dir, capture_output=True, text=True, check=False
    )


def json_lines(text: str) -> list[dict[str, object]]:
    """Every line of TEXT, each of which must be one JSON object."""
    return [json.loads(line) for line in text.splitlines()]


def test_a_verbose_json_run_logs_every_request_and_retry_and_no_patient_data(site: Site) -> None:
    rows = people(3)
    export = site.write_csv(rows)
    site.server.set_faults([Fault("status_503", first=1, retry_after=None)])  # one retry, logged at INFO
    done = cws(site, "-vv", "--log-format", "json", "run", export, "-m", site.mapping, "-c", site.config)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # cron: nothing to say; the log goes to stderr only

    records = json_lines(done.stderr)
    requests = [r for r in records if r["logger"] == "pipeline.delivery" and "method" in r]
    assert {(r["method"], r["status"]) for r in requests} >= {("POST", 503), ("POST", 201)}
    assert all(str(r["path"]).startswith("/ws/") and r["level"] == "DEBUG" for r in requests)
    assert len(requests) == site.server.counters().requests  # each request the server saw, one line
    retries = [r for r in records if r["logger"] == "pipeline.delivery" and "attempt" in r]
    assert [(r["level"], r["attempt"]) for r in retries] == [("INFO", 1)] and "HTTP 503" in str(retries[0]["message"])
    run_id = next(r["run_id"] for r in records if str(r["message"]).startswith("run ") and "started" in r["message"])
    (end,) = [r for r in records if "exit_code" in r and r.get("run_id") == run_id]
    assert (end["status"], end["exit_code"], end["counts"]) == ("finished", 0, {"delivered": 3})

    secrets = {cell for row in rows for cell in (row[2], row[3], row[4])}
    assert [s for s in secrets if s in done.stderr] == []
    assert '"fname"' not in done.stderr and "Aishaqz" not in done.stderr  # no body, not even a field of one


def test_without_verbose_a_good_run_writes_nothing_at_all(site: Site) -> None:
    export = site.write_csv(people(2))
    site.server.set_faults([Fault("status_503", first=1, retry_after=None)])  # a retry happens, silently
    done = cws(site, "run", export, "-m", site.mapping, "-c", site.config)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert site.server.counters().requests == 3  # the retry did happen: it was only not logged


def test_one_v_shows_the_run_and_its_retries_as_text_but_no_request(site: Site) -> None:
    export = site.write_csv(people(2))
    done = cws(site, "-v", "run", export, "-m", site.mapping, "-c", site.config)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(" INFO pipeline.delivery: run 1 started: bookings.csv" in line for line in lines), lines
    assert any(line.endswith("INFO pipeline.delivery: run 1 finished, exit 0: 2 delivered") for line in lines)
    assert not any(" DEBUG " in line or "/ws/" in line for line in lines)  # requests are DEBUG: -vv


def test_a_refused_command_logs_its_error_with_its_exit_code(site: Site) -> None:
    done = cws(site, "-v", "--log-format", "json", "status", "-l", site.dir / "none.sqlite")
    assert done.returncode == 2
    logged, printed = done.stderr.splitlines()
    record = json.loads(logged)
    assert (record["level"], record["logger"], record["exit_code"]) == ("ERROR", "pipeline.cli", 2)
    assert "no such ledger file" in str(record["message"]) and printed.startswith("Error: ")


def test_the_library_is_silent_until_the_application_shows_its_log() -> None:
    """No handler: not even a stop's warning reaches stderr (Python's last-resort handler would print it)."""
    stop = "from pipeline.delivery._pacing import RunStop; RunStop().stop('the circuit breaker tripped')"
    done = subprocess.run([sys.executable, "-c", stop], capture_output=True, text=True, check=True)
    assert done.stderr == ""
    bare = f"import logging, pipeline._logging; logging.getLogger('pipeline').handlers.clear(); {stop}"
    shown = subprocess.run([sys.executable, "-c", bare], capture_output=True, text=True, check=True)
    assert shown.stderr == "run stopped: the circuit breaker tripped\n"  # what the NullHandler keeps quiet


def test_the_cli_and_the_package_load_no_logging_until_asked() -> None:
    for module in ("pipeline", "pipeline.cli"):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
        )
        loaded = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import")}
        assert module in loaded and "logging" not in loaded, module
    assert cli_formats == LOG_FORMATS  # the CLI's copy, kept so that --help need not import pipeline._logging


def test_json_lines_carry_the_extras_and_stopping_restores_silence() -> None:
    stream = io.StringIO()
    handler = configure_logging(2, "json", stream)
    assert handler is not None and isinstance(handler.formatter, JsonLines)
    logging.getLogger("pipeline.delivery").debug("GET %s", "/ws/patients/P1", extra={"status": 200})
    stop_logging(handler)
    logging.getLogger("pipeline.delivery").debug("after")
    (line,) = json_lines(stream.getvalue())
    assert (line["level"], line["message"], line["status"]) == ("DEBUG", "GET /ws/patients/P1", 200)
    assert configure_logging(0, "json", stream) is None


def test_a_ledger_error_is_logged_at_error_in_its_own_words(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger.open(path).close()
    with (
        caplog.at_level(logging.ERROR, logger="pipeline"),
        Ledger.open_read_only(path) as ledger,
        pytest.raises(LedgerError, match="cannot write the ledger") as failed,
    ):
        ledger.begin_run(RunInfo(*"abcdefghi"), 1)  # a read-only connection: SQLite refuses the write
    (record,) = caplog.records
    assert (record.levelname, record.name, record.getMessage()) == ("ERROR", "pipeline.ledger", str(failed.value))

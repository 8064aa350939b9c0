"""`cws-pipeline report` on ledgers made by real runs against the local CWS server: text, JSON and CSV."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import stat
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import cli
from pipeline.ledger import ROW_STATES, Ledger
from pipeline.review._report import RECORD_FIELDS
from pipeline.tools._bench_report import bench_report

from .mixed_ledger import FORMULA_NAME, MixedLedger


def report(ledger: Path, *args: str) -> Result:
    """Invoke `cws-pipeline report --ledger LEDGER ARGS`."""
    return CliRunner().invoke(cli, ["report", "--ledger", str(ledger), *args])


def assert_no_patient_data(text: str) -> None:
    """Names and birth dates of the sample rows never appear."""
    for i in range(1, 9):
        assert f"First{i}" not in text and f"Last{i}" not in text
    assert "HYPERLINK" not in text and "19" + "51-02-11" not in text


def test_text_report_shows_run_header_counts_and_rows_needing_attention(mixed: MixedLedger) -> None:
    result = report(mixed.site.ledger, "--run", str(mixed.first))
    assert result.exit_code == 0, result.output
    out = result.output
    sha = hashlib.sha256(mixed.csv.read_bytes()).hexdigest()
    assert out.startswith(f"Run {mixed.first} (finished, exit 1): ")
    assert str(mixed.csv.resolve()) in out and f"sha256 {sha}" in out and str(mixed.site.mapping) in out
    assert f"endpoint  {mixed.site.server.url}/ws/patients/" in out and "access    county-jms (CWS-SHA256)" in out
    assert "rows      8: delivered 6, skipped 0, changed 0, invalid 1, rejected 1, failed 0" in out
    assert "Rows needing attention: 2\n" in out
    assert "  line      3  P000002/B000002  rejected  HTTP 400: " in out
    assert "  line      5  P000004/B000004  invalid   line 5: dob (column 'DOB')" in out
    assert "P000006" not in out  # delivered rows are counted, not listed
    assert "invalid: The row failed the mapping" in out
    assert_no_patient_data(out)
    assert max(len(line) for line in out.splitlines()) < 200  # no row of cells, no body dumps


def test_text_report_defaults_to_the_latest_run(mixed: MixedLedger) -> None:
    result = report(mixed.site.ledger)
    assert result.exit_code == 0
    assert result.output.startswith(f"Run {mixed.second} (finished, exit 0)")  # nothing new needed a person
    assert "delivered 0, skipped 6" in result.output and "rejected earlier with the same body" in result.output


def test_json_report_has_the_documented_shape(mixed: MixedLedger) -> None:
    result = report(mixed.site.ledger, "--all", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert list(data) == ["runs", "needs_person", "rows", "records"]
    assert [r["run_id"] for r in data["runs"]] == [mixed.first, mixed.second]
    for run in data["runs"]:
        assert {"run_id", "started_at", "finished_at", "status", "exit_code", "source", "source_sha256", "mapping",
                "counts"} <= set(run)  # fmt: skip
        assert Path(run["mapping"]).is_absolute() and Path(run["source"]).is_absolute()
        assert list(run["counts"]) == list(ROW_STATES)
        for stamp in (run["started_at"], run["finished_at"]):
            assert datetime.fromisoformat(stamp).utcoffset() is not None
    assert data["runs"][0]["counts"]["delivered"] == 6 and data["runs"][1]["counts"]["skipped"] == 6
    assert len(data["records"]) == 16
    for record in data["records"]:
        assert list(record) == list(RECORD_FIELDS)
        assert datetime.fromisoformat(record["at"]).utcoffset() is not None
    first = {r["line"]: r for r in data["records"] if r["run_id"] == mixed.first}
    p1, p2, bad = first[2], first[3], first[5]
    assert p1["state"] == "delivered" and p1["attempts"] == 2  # the unverified POST, then the settling lookup
    assert p1["http_status"] == 200 and p1["response_verified"] is True and p1["response_signer"] == "coremr"
    assert p1["request_signature"].startswith("CWS-SHA256 Access=county-jms, Signature=")
    assert p1["response_signature"].startswith("CWS-SHA256 Access=coremr, Signature=")
    assert p2["state"] == "rejected" and p2["http_status"] == 400 and "HTTP 400" in p2["error"]
    assert len(p2["request_sha256"]) == 64
    assert bad["state"] == "invalid" and bad["attempts"] == 0 and bad["response_verified"] is None
    assert bad["request_signature"] is None and "dob" in bad["error"]
    assert_no_patient_data(result.output)


def test_json_report_runs_are_the_ledgers_run_records_in_the_documented_order(mixed: MixedLedger) -> None:
    result = report(mixed.site.ledger, "--all", "--format", "json")
    assert result.exit_code == 0, result.output
    # docs/audit.md, "JSON" (a public interface): a run's keys in this order.
    documented = [
        "run_id", "started_at", "finished_at", "status", "exit_code", "source", "source_sha256", "mapping",
        "mapping_sha256", "base_url", "endpoint", "access", "algorithm", "program_version", "counts",
        "responses_verified", "responses_unverified", "actions", "user", "host",
    ]  # fmt: skip
    with Ledger.open_read_only(mixed.site.ledger) as ledger:
        records = ledger.runs()
    runs = json.loads(result.output)["runs"]
    assert len(runs) == len(records) == 2
    for run, record in zip(runs, records, strict=True):
        assert list(run) == documented
        recorded = {"run_id": record.run_id, "started_at": record.started_at, "finished_at": record.finished_at,
                    "status": record.status, "exit_code": record.exit_code, **asdict(record.info)}  # fmt: skip
        assert {k: run[k] for k in recorded} == recorded


def test_state_filter_selects_rows_in_those_states_across_runs(mixed: MixedLedger) -> None:
    result = report(mixed.site.ledger, "--all", "--state", "invalid", "--state", "rejected", "--format", "json")
    records = json.loads(result.output)["records"]
    assert sorted((r["run_id"], r["line"], r["state"]) for r in records) == [
        (mixed.first, 3, "rejected"), (mixed.first, 5, "invalid"),
        (mixed.second, 3, "rejected"), (mixed.second, 5, "invalid"),
    ]  # fmt: skip
    text = report(mixed.site.ledger, "--run", str(mixed.first), "--state", "delivered").output
    assert "Rows in state delivered: 6" in text and "line      2  P000001/B000001  delivered" in text


def test_csv_file_is_private_holds_original_cells_and_neutralises_formulas(mixed: MixedLedger, tmp_path: Path) -> None:
    out = tmp_path / "report.csv"
    result = report(mixed.site.ledger, "--run", str(mixed.first), "--format", "csv", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert list(rows[0])[: len(RECORD_FIELDS)] == list(RECORD_FIELDS)
    assert list(rows[0])[len(RECORD_FIELDS) :] == ["Inmate ID", "Booking", "First", "Last", "DOB", "Sex", "Booked"]
    by_line = {int(r["line"]): r for r in rows}
    assert by_line[7]["First"] == "'" + FORMULA_NAME  # a spreadsheet shows it as text, never runs it
    assert by_line[5]["DOB"] == "not a date" and by_line[5]["state"] == "invalid"
    assert by_line[2]["Last"] == "Last1" and by_line[2]["response_verified"] == "true"
    assert all(not v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())


def test_csv_on_stdout_has_no_original_cells(mixed: MixedLedger) -> None:
    result = report(mixed.site.ledger, "--format", "csv")
    header = result.output.splitlines()[0]
    assert header == ",".join(RECORD_FIELDS)
    assert_no_patient_data(result.output)


def test_existing_output_file_is_made_private(mixed: MixedLedger, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text("old", encoding="utf-8")
    out.chmod(0o644)
    assert report(mixed.site.ledger, "--format", "json", "--output", str(out)).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and json.loads(out.read_text())["runs"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "99"], "--run 99: no such run in"),
        (["--run", "1", "--all"], "give --run ID, or --all / --since / --until, not both"),
        (["--run", "1", "--since", "2026-01-01"], "give --run ID, or --all / --since / --until, not both"),
        (["--since", "yesterday"], "--since 'yesterday': give a date like"),
        (["--since", "2999-01-01"], "no run started in that period"),
        (["--format", "csv", "--audit"], "--audit shows in text, json and html reports, not csv"),
        (["--audit"], "--audit needs --config CONFIG"),
        (["--state", "lost"], "'lost' is not one of"),
    ],
)
def test_bad_report_options_are_one_line_errors(mixed: MixedLedger, args: list[str], message: str) -> None:
    result = report(mixed.site.ledger, *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_missing_or_empty_ledger_is_a_one_line_error(tmp_path: Path) -> None:
    missing = report(tmp_path / "nope.sqlite")
    assert missing.exit_code == 2 and "nope.sqlite: no such ledger file" in missing.output
    from pipeline.ledger import Ledger

    Ledger.open(tmp_path / "empty.sqlite").close()
    empty = report(tmp_path / "empty.sqlite")
    assert empty.exit_code == 2 and "no runs recorded yet" in empty.output


def test_bench_report_builds_a_synthetic_ledger_and_times_every_format(tmp_path: Path) -> None:
    figures = bench_report(200, tmp_path)
    formats = {"text", "json", "csv", "html"}
    assert figures["rows"] == 200 and {f"{f}_s" for f in formats} | {f"{f}_rerun_s" for f in formats} <= set(figures)
    data = json.loads((tmp_path / "bench-report.json").read_text(encoding="utf-8"))
    assert len(data["records"]) == 200 and data["runs"][0]["counts"]["rejected"] == 10
    rerun = json.loads((tmp_path / "bench-report_rerun.json").read_text(encoding="utf-8"))
    assert rerun["runs"][0]["counts"]["skipped"] == 190 and {r["state"] for r in rerun["records"]} == {"skipped"}
    with (tmp_path / "bench-report_rerun.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 190 and all(r["First"] == "First" + r["Inmate ID"].lstrip("P0") for r in rows)  # their cells

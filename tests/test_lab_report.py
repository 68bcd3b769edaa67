"""The lab's reports: the explanation in the terminal and the HTML file, from a real lab run.

The report rendered here comes from a real, short `run_lab` of missing_index (small scale, one
repeat) on a database of its own; the renderers are also fed reports that lack every optional key.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from pglab.lab.postgres.testdbs import TestServer, cloned_database
from pglab.lab.trial.htmlreport import render_html, write_html
from pglab.lab.trial.report import run_lab
from pglab.lab.trial.terminal import amount, render

ENTRY = "missing_index"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(pg_server: TestServer, pg_template: str) -> Iterator[dict[str, Any]]:
    with cloned_database(pg_server, pg_template) as dsn:
        yield run_lab(ENTRY, "small", duration=5, dsn=dsn, allow_write=True)  # the shortest: rendering is tested


def text_of(report: dict[str, Any]) -> str:
    out = io.StringIO()
    render(report, Console(file=out, width=140, color_system=None))
    if os.environ.get("PGLAB_SHOW_REPORT"):
        print(out.getvalue())
    return out.getvalue()


def test_the_terminal_explains_what_happened(report: dict[str, Any]) -> None:
    text = text_of(report)
    naive, fixed = report["naive"], report["fixed"]
    assert "p99_under_slo (predicted)" in text and "offered / achieved" in text
    for side in (naive, fixed):
        assert f"{side['offered_rps']:,.1f} / {side['achieved_rps']:,.1f} req/s" in text
    assert "What missing_index did" in text and "What the detector saw" in text
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_conversation_id_created_at_idx" in text
    effect = report["effect"]
    assert f"Effect: {effect['metric']} {amount(effect['naive'])} -> {amount(effect['fixed'])}" in text
    assert "pglab explain missing_index" in text
    assert text.index("verdict:") < text.index("What the detector saw")  # the explanation follows the table
    for other in report["also_present"]:
        assert f"{other['id']} ({other['side']} run)" in text.split("Also present")[1]


def test_the_report_names_the_machine_it_was_measured_on(report: dict[str, Any]) -> None:
    """Fixed rates overload a slow machine and barely load a fast one: a report says which it was."""
    machine = report["machine"]
    assert machine["cpu"] and machine["cores"] >= 1
    assert machine["postgres_work_ms"] > 1 and machine["python_work_ms"] > 1  # a real timing of real work
    assert f"Measured on: {machine['cpu']}, {machine['cores']} cores" in text_of(report)
    assert f"Measured on: {machine['cpu']}, {machine['cores']} cores" in render_html(report)


def test_the_terminal_states_the_measured_load(report: dict[str, Any]) -> None:
    """missing_index's load is half of what its reference fix completes flat out on this machine."""
    load = report["load"]
    assert load["measured"] == "fixed"
    assert (f"Load: {load['share']:g} x the {load['capacity_rps']:,.1f} req/s the reference fix completed flat out"
            f" on this machine = {load['offered_rps']:,.1f} req/s offered to both sides") in text_of(report)
    assert f"= {load['offered_rps']:,.1f} req/s offered to both sides" in render_html(report)


def test_the_terminal_copes_with_a_report_missing_every_optional_key(report: dict[str, Any]) -> None:
    old = {key: report[key] for key in ("id", "scale", "verdict")}
    old["naive"] = {key: value for key, value in report["naive"].items()
                    if key in ("requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms", "lost_updates",
                               "invariants", "detections")}
    old["fixed"] = {}
    text = text_of(old)
    assert f"verdict: {report['verdict']}" in text and "offered / achieved" not in text
    assert "pglab explain missing_index" in text
    assert "verdict: unknown" in text_of({})


def test_the_effect_says_to_zero_when_the_fixed_side_has_none(report: dict[str, Any]) -> None:
    """A formatting case (the figures are an input, not a measurement): a null ratio reads "-> 0"."""
    lost = {**report, "effect": {"metric": "no_lost_updates", "naive": 7336, "fixed": 0, "ratio": None}}
    assert "Effect: no_lost_updates 7,336 -> 0, one run per side" in text_of(lost)


@pytest.mark.parametrize(("effect", "expected"), [
    ({"metric": "goodput_within_slo", "naive": 5.6, "fixed": 33.2, "better": "higher", "ratio": 5.9},
     "goodput_within_slo 5.6 -> 33.2 (5.9x better)"),
    ({"metric": "goodput_within_slo", "naive": 0, "fixed": 127, "better": "higher", "ratio": None},
     "goodput_within_slo 0 -> 127 (from 0)"),
    ({"metric": "p99_under_slo", "naive": 50, "fixed": 250, "better": "lower", "ratio": 0.2},
     "p99_under_slo 50 -> 250 (5.0x worse)"),
])
def test_the_effect_reads_in_the_metrics_direction(report: dict[str, Any], effect: dict[str, Any],
                                                    expected: str) -> None:
    """A formatting case: a rise in goodput is better, a fix that made p99 worse says so."""
    assert f"Effect: {expected}" in text_of({**report, "effect": effect})


def test_the_html_report_is_one_self_contained_file(report: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_html(report, path)
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page)  # nothing fetched from elsewhere
    assert "plotly.js v" in page  # the library is inlined
    for text in ("before and after", "latency (ms, log)", "connections", "detections", "the fix that was applied",
                 "what missing_index is"):
        assert text in page.lower()
    assert "messages_conversation_id_created_at_idx" in page
    assert str(report["naive"]["timeline"][-1]["t"]) in page  # the measured timeline is in the chart data
    write_html({}, tmp_path / "empty.html")  # and an empty report still renders


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install chromium)")
def test_the_html_report_renders_in_a_headless_browser(report: dict[str, Any], tmp_path: Path) -> None:
    """Chromium runs plotly.js: the charts exist only if the page's scripts drew them."""
    path = tmp_path / "report.html"
    write_html(report, path)
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run([*command, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert dom.count('class="main-svg"') >= 2 and "naive" in dom and "fixed" in dom
    screenshot = tmp_path / "report.png"
    subprocess.run([*command, "--window-size=1280,2200", f"--screenshot={screenshot}", path.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert screenshot.stat().st_size > 20_000  # a blank page compresses to a few kB
    if os.environ.get("PGLAB_KEEP_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["PGLAB_KEEP_SCREENSHOT"])
        shutil.copy(path, Path(os.environ["PGLAB_KEEP_SCREENSHOT"]).with_suffix(".html"))

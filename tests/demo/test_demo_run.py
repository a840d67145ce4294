"""`recap demo --quick` end to end as a user runs it (a subprocess on the test Ray cluster), its resume, and its
report checked in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from recap.report import PROJECT_ROOT

RAY_NOISE = (
    "INFO worker.py", "Started a local Ray", "Token authentication", "streaming_executor", "core_worker",
    "Loading weights",  # transformers' bar, once on the terminal
)  # fmt: skip
SECTIONS = ("examples", "quality", "download", "curation", "clip", "dit", "timings")


def _demo(out: Path, ray_address: str) -> subprocess.CompletedProcess:
    recap = os.path.join(os.path.dirname(sys.executable), "recap")
    command = [recap, "demo", "--quick", "--out", str(out), "--ray-address", ray_address]
    return subprocess.run(command, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="module")
def quick_demo(ray_cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    result = _demo(out, ray_cluster)
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result


@pytest.mark.slow
def test_quick_demo_runs_every_step_and_says_where_the_report_is(quick_demo):
    out, result = quick_demo
    terminal = result.stdout + result.stderr
    assert all(f"[{n}/8]" in result.stdout for n in range(1, 9))
    assert f"report: {out / 'report' / 'index.html'}" in result.stdout
    assert re.search(r"time: [\d.]+ min for all steps \((within|OVER) the 15-minute budget", result.stdout)
    for noise in RAY_NOISE:  # Ray's and the libraries' lines go to the log, not to the newcomer's terminal
        assert noise not in terminal, noise
    assert (out / "demo.log").stat().st_size > 0


@pytest.mark.slow
def test_every_downloaded_sample_is_a_caption_row_and_the_funnel_reconciles(quick_demo):
    out, _ = quick_demo
    summary = json.loads((out / "demo_summary.json").read_text())
    results = summary["results"]
    downloaded = results["download"]["summary"]["successes"]
    rows = sum(pq.read_metadata(path).num_rows for path in (out / "captions").glob("*.parquet"))
    assert rows == downloaded == results["recaption"]["job"]["rows"]
    card = results["curate"]["card"]
    dropped = sum(step["dropped"] for step in card["funnel"])
    assert card["rows_in"] == results["score"]["job"]["rows"] and card["rows_kept"] + dropped == card["rows_in"]
    assert [row["p_original"] for row in results["clip"]["sweep"]["rows"]] == [1.0, 0.5, 0.0]
    dit = results["dit"]
    # the recaption-prompted draw is skipped only when it would repeat the ground-truth one exactly
    expected = {"truth"} if dit["recaptions_equal_to_truth"] == dit["prompts"] else {"truth", "recaption"}
    assert set(dit["reports"]) == expected


@pytest.mark.slow
def test_a_rerun_skips_finished_steps_and_redoes_a_removed_one(quick_demo, ray_cluster):
    out, _ = quick_demo
    (out / "steps" / "dit.json").unlink()
    result = _demo(out, ray_cluster)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("finished earlier") == 7
    assert "[8/8] drawing eval prompts with Recap-DiT at p=0 and p=1\n" in result.stdout
    assert (out / "steps" / "dit.json").exists()


@pytest.mark.slow
def test_the_report_shows_this_runs_numbers(quick_demo):
    out, _ = quick_demo
    page = (out / "report" / "index.html").read_text()
    markdown = (out / "report" / "report.md").read_text()
    summary = json.loads((out / "demo_summary.json").read_text())
    results = summary["results"]
    for section in SECTIONS:
        assert f'id="{section}"' in page, section
    download = results["download"]["summary"]
    assert f"fetched {download['successes']} of {download['count']} URLs" in page
    assert f"fetched {download['successes']} of {download['count']} URLs" in markdown
    mean = results["curate"]["card"]["clip_score"]["re_clip_score"]["scored"]["mean"]
    assert f"{mean:.1f}" in page
    for example in results["recaption"]["examples"][:3]:
        assert example["re_caption"] in page and example["truth"] in page
    assert "recap world --out" in page and "recap eval-t2i" in page  # the commands behind the numbers
    # self-contained: every image the pages use is a file beside them, no address outside the folder
    sources = re.findall(r'src="([^"]+)"', page)
    models = len(results["dit"]["models"])  # p = 0, p = 1 and the one-step generator
    grids = models * len(results["dit"]["reports"])  # one per model and prompt source
    assert models == 3 and "p = 0 in one step" in page
    assert len(sources) == 12 + 4 + grids and all((out / "report" / src).is_file() for src in sources)
    assert "http://" not in page and "https://" not in page
    # the shipped models are named as the project's files, not as paths of the machine that ran the demo
    card = (out / "release" / "data_card.md").read_text()
    assert "Captioner: <code>recap/assets/captioner-tiny</code>" in page and "`recap/assets/clip-tiny`" in card
    for text in (page, markdown, card):
        assert str(PROJECT_ROOT) not in text


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_the_report_renders_in_a_real_browser(quick_demo, tmp_path):
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no Chromium on this machine (`make test` installs Debian's chromium package when it can)")
    from playwright.sync_api import sync_playwright

    out, _ = quick_demo
    errors = []
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=flags + ["--disable-sync"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto((out / "report" / "index.html").as_uri())
        page.wait_for_load_state("load")
        widths = page.evaluate("Array.from(document.images).map(image => image.naturalWidth)")
        rows = page.evaluate(
            "Array.from(document.querySelectorAll('table')).map(table => table.querySelectorAll('tbody tr').length)"
        )
        headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.id)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert len(widths) >= 18 and all(width > 0 for width in widths), widths
    sources = len(json.loads((out / "demo_summary.json").read_text())["results"]["dit"]["reports"])
    # two caption quality tables, download, funnel, CLIP p, timings, and one DiT table per prompt source
    assert len(rows) == 6 + sources and all(count > 0 for count in rows), rows
    assert set(SECTIONS) <= set(headings)
    assert errors == []
    assert (tmp_path / "report.png").stat().st_size > 10_000

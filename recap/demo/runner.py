"""Run the demo's steps in order, each at most once per world: a finished step's result is stored in
OUT/steps/NAME.json, and a rerun of an interrupted (or finished) demo with the same options keeps the finished
steps, says so, and starts at the first unfinished one. A step that runs again makes every later one run again."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from recap.console import current, echo
from recap.demo.config import BUDGET_SECONDS, DemoConfig
from recap.demo.steps import (
    Step,
    caption_eval_split,
    clip_sweep,
    curate_release,
    download,
    draw_with_dit,
    make_world,
    recaption,
    score,
)
from recap.demo.summaries import (
    summarize_captions,
    summarize_clip,
    summarize_curation,
    summarize_dit,
    summarize_download,
    summarize_eval_captions,
    summarize_score,
    summarize_world,
)
from recap.errors import RecapError
from recap.io_utils import ensure_writable_folder, write_json_atomic

STEPS = (
    Step("world", "generating the embedded world", make_world, summarize_world),
    Step("download", "downloading the web split with img2dataset from a local server", download, summarize_download),
    Step("recaption", "recaptioning the shards with the Ray Data job", recaption, summarize_captions),
    Step("score", "CLIP-scoring both captions with the reference CLIP (Ray Data job)", score, summarize_score),
    Step("curate", "curating a release (DataComp's CLIP-score top 30%)", curate_release, summarize_curation),
    Step("eval_captions", "captioning the held-out eval split", caption_eval_split, summarize_eval_captions),
    Step("clip", "training Recap-CLIP at several p and evaluating retrieval", clip_sweep, summarize_clip),
    Step("dit", "drawing eval prompts with Recap-DiT at p=0 and p=1", draw_with_dit, summarize_dit),
)
RAY_STEPS = ("recaption", "score")
LOG_FILE = "demo.log"
SUMMARY_FILE = "demo_summary.json"


def _stored(path: Path, identity: dict) -> dict | None:
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record if record.get("identity") == identity else None


def _start_ray(config: DemoConfig) -> None:
    """Start (or join) Ray once, before the first job needs it (the console sends its workers' output, which
    comes through this process, to the log unless --verbose)."""
    from recap.executors.ray_executor import connect

    connect(config.ray_address or "local")


def run_steps(
    config: DemoConfig, say: Callable[[str], None], log: Path | None, steps: tuple[Step, ...] = STEPS
) -> dict:
    """Run `steps` in order, keeping those finished earlier with the same options, and `say` a line per step;
    returns name -> record (identity, seconds, finished_at, result). A failing step raises RecapError naming it
    and the log."""
    identity = config.identity()
    folder = config.folder / "steps"
    folder.mkdir(parents=True, exist_ok=True)
    results, records, rerun = {}, {}, False
    for number, step in enumerate(steps, start=1):
        path = folder / f"{step.name}.json"
        record = None if rerun else _stored(path, identity)
        header = f"[{number}/{len(steps)}] {step.title}"
        if record is not None:
            say(f"{header}: finished earlier ({path}), skipped")
        else:
            rerun = True
            path.unlink(missing_ok=True)
            say(header)
            if step.name in RAY_STEPS:
                _start_ray(config)
            started = time.perf_counter()
            try:
                result = step.run(config, results)
            except Exception as error:  # every failure names its step, the log and how to go on
                where = f"Libraries' messages are in {log}; fix" if log else "Fix"
                raise RecapError(
                    f"demo step {number} ({step.name}) failed: {error}. {where} the cause and run the same command "
                    "again: finished steps are kept"
                ) from error
            record = {
                "identity": identity,
                "seconds": round(time.perf_counter() - started, 1),
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "result": result,
            }
            write_json_atomic(path, record)
        results[step.name], records[step.name] = record["result"], record
        say(f"      {step.summary(record['result'])}")
    return records


def run_demo(config: DemoConfig) -> dict:
    """Run (or resume) every step, write the report, print where it is; returns the summary that is also written
    to OUT/demo_summary.json. Our lines go through the console (`recap demo` sends the libraries' to the log)."""
    from recap.demo.report import write_report

    started = time.perf_counter()
    folder = ensure_writable_folder(config.out, "demo folder")
    console = current()
    log = console.log if console else None
    if log:
        echo(f"recap demo: libraries' messages go to {log} (--verbose shows them here)")
    records = run_steps(config, echo, log)
    seconds_this_run = round(time.perf_counter() - started, 1)
    timings = {name: {"seconds": r["seconds"], "finished_at": r["finished_at"]} for name, r in records.items()}
    summary = {
        "config": config.identity() | {"out": str(folder)},
        "results": {name: record["result"] for name, record in records.items()},
        "timings": timings,
        "seconds_this_run": seconds_this_run,
        "seconds_all_steps": round(sum(t["seconds"] for t in timings.values()), 1),
        "budget_seconds": BUDGET_SECONDS,
        "log": str(log or folder / LOG_FILE),
    }
    echo("writing the report")
    summary["report"] = write_report(summary, folder / "report")
    write_json_atomic(folder / SUMMARY_FILE, summary)
    total = summary["seconds_all_steps"]
    verdict = "within" if total <= BUDGET_SECONDS else "OVER"
    echo(
        f"\nreport: {summary['report']['html']}\n(also {summary['report']['markdown']}; summary "
        f"{folder / SUMMARY_FILE})\ntime: {total / 60:.1f} min for all steps ({verdict} the "
        f"{BUDGET_SECONDS // 60}-minute budget on 2 CPU cores); {seconds_this_run / 60:.1f} min this run"
    )
    return summary

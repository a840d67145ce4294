"""The demo's report: OUT/report/index.html and report.md from one summary, with jinja2 templates and matplotlib
figures. The folder is self-contained (every image is a file beside the pages, no internet needed): it can be
zipped, served or opened from disk."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from recap.demo.config import BUDGET_SECONDS
from recap.report import QUALITY_ROWS

THUMBNAIL = 128  # example images are enlarged (nearest neighbour) from the world's 64-128 px
DIT_MODEL_NAMES = {
    "p0.0": "p = 0 (recaptions only)",
    "p1.0": "p = 1 (alt-text only)",
    "p0.0-1step": "p = 0 in one step (SiD-distilled)",
}
STEP_NAMES = {
    "world": "world",
    "download": "download (img2dataset)",
    "recaption": "recaption job (Ray Data)",
    "score": "scoring job (Ray Data)",
    "curate": "curation and release",
    "eval_captions": "eval split captioned",
    "clip": "Recap-CLIP p sweep",
    "dit": "Recap-DiT samples",
}


def _copy(source: str | Path, folder: Path, name: str) -> str:
    """Copy a file into the report folder; returns its path relative to the pages."""
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return name


def _thumbnail(source: str, folder: Path, name: str) -> str:
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").resize((THUMBNAIL, THUMBNAIL), Image.Resampling.NEAREST).save(target)
    return name


def _figure_quality(quality: dict, path: Path) -> None:
    """Bars of precision and recall, alt-text against recaption, on the web split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("object precision", "object_precision"), ("object recall", "object_recall")]
    metrics += [("attribute precision", "attribute_precision"), ("attribute recall", "attribute_recall")]
    figure, axis = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    width = 0.38
    sources = (("alt-text", "org_caption", -width / 2), ("recaption", "re_caption", width / 2))
    for label, column, offset in sources:
        values = [quality[column].get(key) or 0.0 for _, key in metrics]
        axis.bar([i + offset for i in range(len(metrics))], values, width, label=label)
    axis.set_xticks(range(len(metrics)), [label for label, _ in metrics])
    axis.set_ylim(0, 1.05)
    axis.set_ylabel("against the ground truth")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _figure_clip(rows: list[dict], path: Path) -> None:
    """The paper's trade-off: retrieval and brand names against the share of alt-text p."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda row: row["p_original"])
    p = [row["p_original"] for row in rows]
    figure, axis = plt.subplots(figsize=(6.4, 3.2), dpi=100)
    axis.plot(p, [row["mean_recall@1"] for row in rows], "o-", label="retrieval mean_recall@1")
    axis.plot(p, [row["brand_top1"] for row in rows], "s-", label="zero-shot brand top-1")
    axis.set_xlabel("p: share of original alt-text in training")
    axis.set_ylabel("%")
    axis.set_ylim(0, 105)
    axis.legend(loc="center right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _quality_rows(columns: dict[str, dict]) -> list[dict]:
    rows = []
    for label, key in QUALITY_ROWS:
        values = [columns[name].get(key) for name in columns]
        rows.append({"label": label.strip(), "indent": label.startswith(" "), "values": values})
    return rows


def _dit_view(result: dict, folder: Path) -> list[dict]:
    """Per prompt source, per model: the grid (copied beside the pages) and the judged scores."""
    views, same = [], result["recaptions_equal_to_truth"]
    for source, report in result["reports"].items():
        models = []
        for label, model in report["models"].items():
            scores = model["prompt_attribute"]
            models.append(
                {
                    "label": label,
                    "name": DIT_MODEL_NAMES.get(label, label),
                    "grid": _copy(model["grid"], folder, f"images/dit-{source}-{label}.png"),
                    "scale": "-" if model["scale"] is None else model["scale"],
                    "calls": model.get("network_calls_per_image"),
                    "milliseconds": 1000 / model["images_per_s"] if model.get("images_per_s") else None,
                    "scores": scores,
                    "clip_score": model["clip_score"],
                    "frechet_distance": model["frechet_distance"],
                }
            )
        views.append({"source": source, "prompts": report["prompts"], "models": models, "same_as_truth": same})
    return views


def report_context(summary: dict, folder: Path) -> dict:
    """Everything the templates show, with the figures and images written or copied into `folder`."""
    results = summary["results"]
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    recaption, curation = results["recaption"], results["curate"]
    _figure_quality(recaption["quality"], images / "caption_quality.png")
    _figure_clip(results["clip"]["sweep"]["rows"], images / "clip_p.png")
    card = curation["card"]
    release = Path(curation["release"])
    histograms = {name: _copy(release / file, folder, f"images/{file}") for name, file in card["figures"].items()}
    examples = [
        {**row, "thumbnail": _thumbnail(row["image"], folder, f"images/example-{index:02d}.png")}
        for index, row in enumerate(recaption["examples"])
        if row.get("image")
    ]
    timings = [
        {
            "name": STEP_NAMES.get(name, name),
            "seconds": timing["seconds"],
            "finished_at": timing["finished_at"],
            "command": results[name].get("command") or " ; ".join(results[name].get("commands", {}).values()),
        }
        for name, timing in summary["timings"].items()
    ]
    web, held_out = recaption["quality"], results["eval_captions"]["quality"]
    return {
        "summary": summary,
        "config": summary["config"],
        "world": results["world"],
        "download": results["download"],
        "recaption": recaption,
        "score": results["score"],
        "card": card,
        "clip": results["clip"],
        "dit": _dit_view(results["dit"], folder),
        "dit_trained": results["dit"]["trained"],
        "examples": examples,
        "histograms": histograms,
        "figures": {"quality": "images/caption_quality.png", "clip": "images/clip_p.png"},
        "quality_web": _quality_rows({"alt-text": web["org_caption"], "recaption": web["re_caption"]}),
        "quality_eval": _quality_rows({"alt-text": held_out["alt-text"], "recaption": held_out["recaption"]}),
        "timings": timings,
        "total_seconds": summary["seconds_all_steps"],
        "budget_seconds": BUDGET_SECONDS,
    }


def _number(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def write_report(summary: dict, folder: Path) -> dict[str, str]:
    """Write index.html, report.md and their images into `folder` (replaced); returns both pages' paths."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    context = report_context(summary, folder)
    pages = {}
    for kind, template, name in (("html", "index.html.j2", "index.html"), ("markdown", "report.md.j2", "report.md")):
        environment = Environment(
            loader=PackageLoader("recap.demo", "templates"),
            undefined=StrictUndefined,
            autoescape=select_autoescape(["html.j2"]),
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        environment.filters.update(number=_number, percent=_percent)
        (folder / name).write_text(environment.get_template(template).render(**context), encoding="utf-8")
        pages[kind] = str(folder / name)
    return pages

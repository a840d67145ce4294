"""The line the terminal shows after each demo step, from the step's stored result."""

from __future__ import annotations


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def summarize_world(result: dict) -> str:
    splits = ", ".join(f"{split} {n}" for split, n in result["splits"].items())
    return f"{splits} images in {result['world']}"


def summarize_download(result: dict) -> str:
    summary = result["summary"]
    reasons = ", ".join(f"{reason} {n}" for reason, n in (summary.get("failures_by_reason") or {}).items())
    return (
        f"{summary['successes']} of {summary['count']} URLs downloaded ({summary['success_rate']:.1%}) into "
        f"{summary['shards']} shards; failed: {reasons or 'none'}"
    )


def summarize_captions(result: dict) -> str:
    job, alt, new = result["job"], result["quality"]["org_caption"], result["quality"]["re_caption"]
    return (
        f"{job['rows']} rows (= {result['downloaded']} downloaded), {job['rows_ok']} captioned, "
        f"{job['images_per_s']} images/s; object precision alt-text {_percent(alt['object_precision'])} -> "
        f"recaption {_percent(new['object_precision'])}, attribute recall {_percent(alt['attribute_recall'])} -> "
        f"{_percent(new['attribute_recall'])}"
    )


def summarize_score(result: dict) -> str:
    job = result["job"]
    return (
        f"{job['rows_ok']} of {job['rows']} rows scored, {job['re_caption_truncated_total']} recaptions longer than "
        f"the CLIP's text context; {job['images_per_s']} images/s"
    )


def summarize_curation(result: dict) -> str:
    card = result["card"]
    alt, new = card["clip_score"]["org_clip_score"]["scored"], card["clip_score"]["re_clip_score"]["scored"]
    return (
        f"{card['rows_kept']} of {card['rows_in']} rows kept; mean CLIP score alt-text {alt['mean']:.1f}, recaption "
        f"{new['mean']:.1f}; data card {result['data_card']}"
    )


def summarize_eval_captions(result: dict) -> str:
    quality = result["quality"]
    return (
        f"{result['images']} held-out images: object precision {_percent(quality['recaption']['object_precision'])}, "
        f"recall {_percent(quality['recaption']['object_recall'])}"
    )


def summarize_clip(result: dict) -> str:
    rows = {row["p_original"]: row for row in result["sweep"]["rows"]}
    parts = [f"p={p}: retrieval {row['mean_recall@1']:.1f}, brands {row['brand_top1']:.1f}" for p, row in rows.items()]
    return "mean_recall@1 and brand top-1 (%): " + "; ".join(parts)


def summarize_dit(result: dict) -> str:
    report = result["reports"]["truth"]
    parts = [
        f"{label} {100 * model['prompt_attribute']['object_accuracy']:.1f}%"
        for label, model in report["models"].items()
    ]
    speed = {label: model.get("images_per_s") for label, model in report["models"].items()}
    faster = ""
    if speed.get("p0.0-1step") and speed.get("p0.0"):
        faster = f"; one step draws {speed['p0.0-1step'] / speed['p0.0']:.0f}x as many images/s as 20 guided steps"
    return (
        f"objects drawn right (judge) on {report['prompts']} ground-truth prompts: "
        + ", ".join(parts)
        + faster
        + f"; grids in {result['reports']['truth']['config']['out']}"
    )

"""Plain-text reports for the terminal: caption quality side by side, download summaries."""

from __future__ import annotations

from collections.abc import Mapping

QUALITY_ROWS = (
    ("object precision", "object_precision"),
    ("object recall", "object_recall"),
    ("attribute precision", "attribute_precision"),
    ("attribute recall", "attribute_recall"),
    ("  shape accuracy", "shape_precision"),
    ("  colour accuracy", "colour_precision"),
    ("  size accuracy", "size_precision"),
    ("  position accuracy", "position_precision"),
    ("  brand/mark accuracy", "mark_precision"),
    ("  brand/mark recall", "mark_recall"),
    ("captions with no claim", "no_claims_fraction"),
    ("mean length (words)", "mean_words"),
    ("captions", "captions"),
)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def quality_table(columns: Mapping[str, Mapping[str, object]]) -> str:
    """A table with one row per metric and one column per caption source (for example alt-text, recaption)."""
    names = list(columns)
    width = max(len(label) for label, _ in QUALITY_ROWS) + 2
    column_width = max([10] + [len(name) + 2 for name in names])
    lines = ["".ljust(width) + "".join(name.rjust(column_width) for name in names)]
    for label, key in QUALITY_ROWS:
        lines.append(label.ljust(width) + "".join(_cell(columns[n].get(key)).rjust(column_width) for n in names))
    return "\n".join(lines)


def download_report(summary: Mapping[str, object]) -> str:
    """A few lines on an img2dataset run: counts, success rate and failures by reason."""
    lines = [
        f"samples: {summary['count']}  downloaded: {summary['successes']}  "
        f"success rate: {summary['success_rate']:.1%}  shards: {summary['shards']}",
        f"failed to download: {summary['failed_to_download']}  failed to decode/resize: {summary['failed_to_resize']}",
    ]
    reasons = summary.get("failures_by_reason") or {}
    if reasons:
        lines.append("failures by reason: " + ", ".join(f"{reason} {n}" for reason, n in reasons.items()))
    return "\n".join(lines)

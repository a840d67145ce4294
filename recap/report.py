"""Plain-text reports for the terminal: caption quality side by side, download summaries; and how reports name
files (relative to the run folder or the project, not as absolute paths of the machine that ran)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# The folder that holds the `recap` package: a checkout's root, or site-packages for an installed recap (where the
# shipped models then read as recap/assets/..., as in a checkout).
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def display_path(path: str | os.PathLike | None, base: str | os.PathLike | None = None) -> str | None:
    """`path` as a report should name it: relative to `base` (a run folder) when inside it, else to the project
    (the shipped models: recap/assets/...), else to the working folder; otherwise, and for a URI or a name that is
    not a path (an open_clip model name), unchanged. Relative paths stay as they were given."""
    if path is None:
        return None
    text = str(path)
    if "://" in text or not Path(text).is_absolute():
        return text
    absolute = Path(text).resolve()
    for root in (base, PROJECT_ROOT, Path.cwd()):
        if root is None:
            continue
        try:
            return str(absolute.relative_to(Path(root).resolve())) or "."
        except ValueError:
            continue
    return text


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

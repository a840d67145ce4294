"""Zero-shot before and after tuning (`recap tune-clip`), on the same split, in one table.

A CLIP folder that carries learned prompts (POUF's prompt mode, `pouf_prompt.pt`) is scored on each zero-shot
task whose class list is one of its class sets: with eval-retrieval's ensembled templates (what it reports for
any CLIP: before) and with the learned prompts (after); when the prompts were learned from other templates, also
with those (the tuning's step 0). A `--baseline` CLIP (the untuned one, after model mode) adds its columns.
"""

from __future__ import annotations

import numpy as np

from recap.evaluation.retrieval import (
    TEMPLATES,
    ClassificationSet,
    evaluate_zero_shot,
    zero_shot_with_class_features,
)

TEMPLATES_LABEL = "templates"
START_LABEL = "start templates"
LEARNED_LABEL = "learned prompts"
RETRIEVAL_ROW = "retrieval (mean R@1)"


def learned_prompt_zero_shot(model, tokenizer, learners: dict, tasks: list[ClassificationSet]) -> dict:
    """{task: {"class_set", "learned": metrics with the learned prompts, "start": metrics with the templates
    the prompts started from, when they are not eval-retrieval's}} for each task whose classes (in order) are
    those of a learned class set."""
    import torch

    results = {}
    for task in tasks:
        match = next((name for name, learner in learners.items() if learner.classes == task.classes), None)
        if match is None:
            continue
        learner = learners[match]
        with torch.no_grad():
            features = learner.text_features(model).double().numpy()
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        results[task.name] = {"class_set": match, "learned": zero_shot_with_class_features(model, features, task)}
        if learner.templates != TEMPLATES:
            results[task.name]["start"] = evaluate_zero_shot(model, tokenizer, task, templates=learner.templates)
    return results


def comparison_columns(results: dict, model: str, baseline: str | None) -> list[tuple[str, dict]]:
    """The table's columns, before to after: (header, {row: top-1}); the rows are the zero-shot tasks and, for
    whole CLIPs, the retrieval's mean R@1."""

    def whole(label: str, evaluated: dict) -> tuple[str, dict]:
        values = {task: value["top1"] for task, value in evaluated["zero_shot"].items()}
        if "retrieval" in evaluated:
            values[RETRIEVAL_ROW] = evaluated["retrieval"]["mean_recall@1"]
        return f"{label}: {TEMPLATES_LABEL}", values

    columns = []
    if "baseline" in results:
        columns.append(whole(baseline or "baseline", results["baseline"]))
    columns.append(whole(model, results))
    learned = results.get("learned_prompts", {}).get("tasks", {})
    start = {task: value["start"]["top1"] for task, value in learned.items() if "start" in value}
    if start:
        columns.append((f"{model}: {START_LABEL}", start))
    if learned:
        columns.append(
            (f"{model}: {LEARNED_LABEL}", {task: value["learned"]["top1"] for task, value in learned.items()})
        )
    return columns


def comparison_markdown(results: dict, model: str, baseline: str | None = None) -> str:
    """A Markdown section with the before/after table, or "" when there is nothing to compare (no baseline and
    no learned prompt)."""
    learned = results.get("learned_prompts")
    if "baseline" not in results and not learned:
        return ""
    columns = comparison_columns(results, model, baseline)
    rows = list(dict.fromkeys(row for _, values in columns for row in values))
    before, after = columns[0][1], columns[-1][1]
    lines = ["## Zero-shot top-1 before / after tuning", ""]
    lines += ["| task | " + " | ".join(header for header, _ in columns) + " | change |"]
    lines += ["|---" * (len(columns) + 2) + "|"]
    for row in rows:
        cells = [f"{values[row]:.3f}" if row in values else "–" for _, values in columns]
        change = f"{after[row] - before[row]:+.3f}" if row in before and row in after else "–"
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {change} |")
    lines.append("")
    if learned:
        started: dict[str, list[str]] = {}
        for name, templates in learned["templates"].items():
            started.setdefault(" | ".join(templates), []).append(name)
        for templates, names in started.items():
            lines.append(f"Learned prompts for {', '.join(names)}: contexts started from {templates} (ensembled).")
        unmatched = sorted(set(learned["class_sets"]) - {value["class_set"] for value in learned["tasks"].values()})
        if unmatched:
            lines.append(f"No zero-shot task of this split has the classes of {', '.join(unmatched)}.")
    lines.append("Change: the last column minus the first.")
    return "\n".join(lines) + "\n"

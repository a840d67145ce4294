"""The release's data card: JSON (every number), Markdown (jinja2) and histograms as PNG (matplotlib)."""

from __future__ import annotations

import json
from pathlib import Path

CARD_JSON, CARD_MARKDOWN = "data_card.json", "data_card.md"
FIGURES = {
    "clip_scores": "clip_scores.png",
    "caption_lengths": "caption_lengths.png",
    "rank_frequency": "concept_rank_frequency.png",
}


def _bars(axis, bins: list[list[float]], width: float, label: str) -> None:
    if bins:
        lows, counts = zip(*bins, strict=True)
        axis.bar(lows, counts, width=width, align="edge", alpha=0.6, label=label)


def plot_histograms(card: dict, folder: Path) -> dict[str, str]:
    """The CLIP-score and caption-length histograms (original against recaption) as PNG files in `folder`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    histograms = card["histograms"]
    figures = {}
    for name, (title, xlabel, columns) in {
        "clip_scores": ("CLIP score, all scored rows", "CLIP score", ("org_clip_score", "re_clip_score")),
        "caption_lengths": ("Caption length, kept rows", "words", ("org_length", "re_length")),
    }.items():
        figure, axis = plt.subplots(figsize=(6, 3.2), dpi=100)
        for column, label in zip(columns, ("original alt-text", "recaption"), strict=True):
            _bars(axis, histograms[column], 2.0, label)
        axis.set_title(title)
        axis.set_xlabel(xlabel)
        axis.set_ylabel("rows")
        if any(histograms[column] for column in columns):
            axis.legend()
        figure.tight_layout()
        figure.savefig(folder / FIGURES[name])
        plt.close(figure)
        figures[name] = FIGURES[name]
    if card.get("concepts"):
        figures["rank_frequency"] = plot_rank_frequency(card["concepts"], folder, plt)
    return figures


def plot_rank_frequency(concepts: dict, folder: Path, plt) -> str:
    """Matches per metadata entry against its rank, log-log: before balancing and, if balanced, after."""
    figure, axis = plt.subplots(figsize=(6, 3.2), dpi=100)
    curves = {"rows every filter kept": concepts["pool"]}
    if concepts.get("balanced"):
        curves["after MetaCLIP balancing (t = {:g})".format(concepts["balanced"]["threshold"])] = concepts["balanced"]
    for label, counts in curves.items():
        values = sorted(counts["counts"].values(), reverse=True)
        if values:
            axis.plot(range(1, len(values) + 1), values, marker=".", label=label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_title(f"Metadata entries in `{concepts['column']}`, by rank")
    axis.set_xlabel("entry rank")
    axis.set_ylabel("captions matching")
    axis.legend()
    figure.tight_layout()
    figure.savefig(folder / FIGURES["rank_frequency"])
    plt.close(figure)
    return FIGURES["rank_frequency"]


def write_data_card(card: dict, folder: Path) -> None:
    """Write data_card.json, data_card.md and the figures into `folder`."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    card["figures"] = plot_histograms(card, folder)
    (folder / CARD_JSON).write_text(json.dumps(card, indent=2, default=str) + "\n")
    environment = Environment(
        loader=PackageLoader("recap.curation", "templates"), undefined=StrictUndefined, keep_trailing_newline=True
    )
    (folder / CARD_MARKDOWN).write_text(environment.get_template("data_card.md.j2").render(card=card))

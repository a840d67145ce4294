"""Checkpoints shipped with the package (trained by the project itself; see each folder's RECIPE.md)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED_CAPTIONER = ASSETS / "captioner-tiny"
SHIPPED_CLIP = ASSETS / "clip-tiny"


def _shipped(folder: Path, marker: str, command: str) -> Path:
    if not (folder / marker).exists():
        raise FileNotFoundError(f"no shipped checkpoint at {folder}; make one with {command} (see its RECIPE.md)")
    return folder


def shipped_captioner() -> Path:
    """The shipped tiny LLaVA captioner folder; FileNotFoundError with the retrain command if it is missing."""
    return _shipped(SHIPPED_CAPTIONER, "config.json", "`recap train-captioner`")


def shipped_clip() -> Path:
    """The shipped reference CLIP (an open_clip `local-dir:` folder): the CLIP-score model for curation and the
    DiT's frozen text encoder. FileNotFoundError with the retrain command if it is missing."""
    return _shipped(SHIPPED_CLIP, "open_clip_config.json", "`recap train-clip` (the reference recipe)")


SHIPPED_T2I = ASSETS / "dit-tiny"


def shipped_t2i() -> Path:
    """The shipped Recap-DiT (p=0: recaptions only) folder, for `recap sample` and the demo without training.
    FileNotFoundError with the retrain command if it is missing."""
    return _shipped(SHIPPED_T2I, "recap_t2i.json", "`recap train-t2i` (see its RECIPE.md)")

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

"""Checkpoints shipped with the package (trained by the project itself; see each folder's RECIPE.md)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHIPPED_CAPTIONER = ASSETS / "captioner-tiny"


def shipped_captioner() -> Path:
    """The shipped tiny LLaVA captioner folder; FileNotFoundError with the retrain command if it is missing."""
    if not (SHIPPED_CAPTIONER / "config.json").exists():
        raise FileNotFoundError(
            f"no shipped captioner at {SHIPPED_CAPTIONER}; train one with `recap train-captioner` (see README)"
        )
    return SHIPPED_CAPTIONER

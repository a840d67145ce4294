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
# The same recipe at p=1 (alt-text only): the demo draws the same prompts with both to show the paper's claim.
SHIPPED_T2I_BY_P = {0.0: SHIPPED_T2I, 1.0: ASSETS / "dit-tiny-p1"}


def shipped_t2i(p: float = 0.0) -> Path:
    """The shipped Recap-DiT folder trained at share of original captions `p` (0.0: recaptions only, the default
    for `recap sample`; 1.0: alt-text only), for sampling without training. FileNotFoundError with the retrain
    command if it is missing."""
    if p not in SHIPPED_T2I_BY_P:
        raise ValueError(f"a Recap-DiT is shipped for p in {sorted(SHIPPED_T2I_BY_P)}, not {p}")
    return _shipped(SHIPPED_T2I_BY_P[p], "recap_t2i.json", "`recap train-t2i` (see its RECIPE.md)")


SHIPPED_ONE_STEP = ASSETS / "dit-tiny-1step"


def shipped_one_step() -> Path:
    """The shipped one-step generator, distilled from the shipped Recap-DiT (p = 0) with SiD (`recap
    distill-t2i`): one network call per image, no guidance. FileNotFoundError with the command if it is missing."""
    return _shipped(SHIPPED_ONE_STEP, "recap_t2i.json", "`recap distill-t2i` (see its RECIPE.md)")

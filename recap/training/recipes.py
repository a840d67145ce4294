"""The recipe that made the shipped tiny captioner: a world to train on and the training config.

`recap demo --retrain-captioner` and recap/assets/captioner-tiny/RECIPE.md both come from here.
"""

from __future__ import annotations

from recap.training.captioner_training import CaptionerTrainingConfig
from recap.world.generate import WorldConfig

# A training world of its own (seed 1), so the demo's and the tests' worlds (other seeds) stay unseen.
CAPTIONER_WORLD = WorldConfig(seed=1, size=100, sft_size=20_000, eval_size=300)


def tiny_captioner_recipe(train: str, eval: str | None, out: str) -> CaptionerTrainingConfig:
    """The shipped captioner's training config (the CLI defaults of `recap train-captioner`)."""
    return CaptionerTrainingConfig(train=train, eval=eval, out=out)

"""The recipe that made the shipped tiny captioner: a world to train on and the training config.

`recap demo --retrain-captioner` runs it; recap/assets/captioner-tiny/RECIPE.md gives the same recipe as the
`recap world` and `recap train-captioner` commands that made the checkpoint.
"""

from __future__ import annotations

from recap.training.captioner_training import CaptionerTrainingConfig
from recap.world.generate import WorldConfig

# A training world of its own (seed 1), so the demo's and the tests' worlds (other seeds) stay unseen.
CAPTIONER_WORLD = WorldConfig(seed=1, size=100, sft_size=60_000, eval_size=300)


def tiny_captioner_recipe(train: str, eval: str | None, out: str) -> CaptionerTrainingConfig:
    """The `recap train-captioner` command of RECIPE.md as a config: the CLI defaults, with the vision tower
    trained in stage 2.

    With the tower frozen, the tiny contrastive tower's features did not carry shape (shape accuracy at
    chance after 500 stage-2 steps), so the recipe unfreezes it at the full learning rate.
    """
    return CaptionerTrainingConfig(
        train=train,
        eval=eval,
        out=out,
        full_steps=4500,
        eval_every=1000,
        unfreeze_vision=True,
        vision_learning_rate_scale=1.0,
    )

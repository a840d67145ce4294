"""The recipes that made the shipped checkpoints: a world to train on and the training config of each.

`recap demo --retrain-captioner` runs the captioner's; recap/assets/*/RECIPE.md give the same recipes as the
`recap world`, `recap train-captioner` and `recap train-clip` commands that made the checkpoints.
"""

from __future__ import annotations

from recap.training.captioner_training import CaptionerTrainingConfig
from recap.training.clip_training import ClipTrainingConfig
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


# The reference CLIP's world: seed 1 as for the captioner (unseen by the demo and the tests), its own sft size.
REFERENCE_CLIP_WORLD = WorldConfig(seed=1, size=100, sft_size=12_000, eval_size=300)


def reference_clip_recipe(train: str, out: str) -> ClipTrainingConfig:
    """recap/assets/clip-tiny: the tiny CLIP on a world's sft split with a 50/50 mix of alt-text (names, such as
    brands) and ground-truth detailed captions (what is where), so that it can score both kinds of caption
    (curation) and encode detailed prompts (the DiT's text encoder)."""
    return ClipTrainingConfig(train=train, out=out, p_original=0.5, steps=2000, batch_size=128, seed=0)

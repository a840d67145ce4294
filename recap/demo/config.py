"""What a demo run is: its options, the sizes they imply, and which of them decide whether a finished step of an
earlier run can be kept."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# Bumped when a step's outputs change meaning: finished steps of runs made before are then run again.
STEPS_VERSION = 2  # 2: the recaption step records the captioner's path apart from how the report names it
BUDGET_SECONDS = 15 * 60  # the whole demo on 2 CPU cores


@dataclass(kw_only=True)
class DemoConfig:
    """`quick` is the test-sized demo (a 200-image world, a few training steps); `train_all` also retrains the
    captioner and trains the Recap-DiT pair instead of using the shipped checkpoints (well over the budget)."""

    out: str = "runs/demo"
    size: int = 2000
    seed: int = 0
    quick: bool = False
    train_all: bool = False
    retrain_captioner: bool = False
    ray_address: str | None = None  # None: a new local Ray; else a running cluster's address

    def __post_init__(self) -> None:
        if self.quick:
            self.size = min(self.size, 200)
        if self.size < 50:
            raise ValueError(f"size must be >= 50 images, got {self.size}")
        if self.train_all:
            self.retrain_captioner = True

    @property
    def folder(self) -> Path:
        return Path(self.out)

    # Sizes that follow from the options.
    @property
    def sft_size(self) -> int:
        return 10  # the demo trains no captioner on it (--train-all retrains on a world of its own)

    @property
    def eval_size(self) -> int:
        return max(50, self.size // 4)

    @property
    def clip_p_values(self) -> tuple[float, ...]:
        return (1.0, 0.5, 0.0)

    @property
    def clip_steps(self) -> int:
        return 20 if self.quick else (1000 if self.train_all else 200)

    @property
    def clip_batch_size(self) -> int:
        return 32 if self.quick else 128

    @property
    def dit_prompts(self) -> int:
        return 8 if self.quick else 48

    @property
    def dit_grid_images(self) -> int:
        return 8 if self.quick else 16

    def identity(self) -> dict:
        """The options a step's result depends on: a finished step is kept only when these are unchanged."""
        keys = ("size", "seed", "quick", "train_all", "retrain_captioner", "sft_size", "eval_size")
        keys += ("clip_p_values", "clip_steps", "clip_batch_size", "dit_prompts", "dit_grid_images")
        identity = {"steps_version": STEPS_VERSION, **{key: getattr(self, key) for key in keys}}
        return json.loads(json.dumps(identity))  # as stored (tuples become lists), so the two compare equal

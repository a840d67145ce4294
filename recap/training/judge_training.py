"""Train the image judge (recap.models.judge) on a world of its own and measure it on another.

    from recap.training.judge_training import JudgeTrainingConfig, train_judge
    summary = train_judge(JudgeTrainingConfig(out="runs/judge", worlds="runs/judge-worlds"))

The images are a freshly generated world's sft split (`JUDGE_WORLD`, seed 3) loaded at 32 px by `load_pairs`,
that is decoded exactly as the recaption job and the DiT's data are; the held-out images are the eval split of
another world (`JUDGE_HELD_OUT_WORLD`, seed 4). Augmentation: a left-right mirror (every normal-world shape is
mirror-symmetric; the grid's columns swap) and shifts of up to two pixels. AdamW with a linear warm-up and a
cosine decay. The judge is written with its held-out accuracy table; a judge below MIN_ACCURACY on any
attribute is still written, and then RecapError says so (the caller decides whether to ship it).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from recap.console import progress_bar
from recap.errors import RecapError
from recap.io_utils import write_json_atomic
from recap.models.judge import (
    ATTRIBUTE_HEADS,
    MIN_ACCURACY,
    ImageJudge,
    JudgeVocabulary,
    below_bar,
    parameter_count,
    predict,
    save_judge,
    to_tensor,
)
from recap.training.pairs import Pairs, load_pairs
from recap.world.generate import WORLD_MANIFEST, WorldConfig, generate_world, load_manifest
from recap.world.scene import Scene
from recap.world.vocabulary import SIZES, get_difficulty

# The judge's own worlds, of seeds that no recipe and no test that scores images uses (captioner and CLIP: 1;
# tests: 7, 8, 11, 2026; the sweep: 2027; only the download test draws a few seed-3 images), so the images it
# will judge are unseen.
JUDGE_WORLD = WorldConfig(seed=3, size=1, sft_size=16_000, eval_size=0)
JUDGE_HELD_OUT_WORLD = WorldConfig(seed=4, size=1, sft_size=0, eval_size=1_000)
IMAGE_SIZE = 32  # the DiT's output size


@dataclass(kw_only=True)
class JudgeTrainingConfig:
    """What `train_judge` trains. `worlds` keeps the generated worlds (reused when their config matches); None
    generates them in a temporary folder."""

    out: str
    worlds: str | None = None
    train_world: WorldConfig = field(default_factory=lambda: replace(JUDGE_WORLD))
    held_out_world: WorldConfig = field(default_factory=lambda: replace(JUDGE_HELD_OUT_WORLD))
    image_size: int = IMAGE_SIZE
    width: int = 24
    hidden: int = 128
    steps: int = 1500
    batch_size: int = 128
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.05
    augment: bool = True
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "width", "hidden", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"JudgeTrainingConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"JudgeTrainingConfig.warmup_steps must be in [0, steps), got {self.warmup_steps}")
        if self.learning_rate <= 0:
            raise ValueError(f"JudgeTrainingConfig.learning_rate must be > 0, got {self.learning_rate}")
        if self.train_world.difficulty != self.held_out_world.difficulty:
            raise ValueError("JudgeTrainingConfig: train_world and held_out_world must share a difficulty")
        if self.train_world.seed == self.held_out_world.seed:
            raise ValueError("JudgeTrainingConfig: the held-out world needs another seed than the training world")
        if not self.train_world.sft_size or not self.held_out_world.eval_size:
            raise ValueError("JudgeTrainingConfig: train_world needs sft images and held_out_world eval images")


def world_vocabulary(difficulty_name: str, image_size: int = IMAGE_SIZE) -> JudgeVocabulary:
    """A world difficulty's vocabulary as the plain data a judge carries."""
    difficulty = get_difficulty(difficulty_name)
    return JudgeVocabulary(
        difficulty=difficulty.name,
        positions=difficulty.positions,
        shapes=difficulty.shapes,
        colours=difficulty.colours,
        sizes=tuple(size for size in SIZES if size in difficulty.radius),
        image_size=image_size,
    )


def scene_targets(scenes: list[str], vocabulary: JudgeVocabulary) -> dict[str, np.ndarray]:
    """Scene JSON strings -> int64 (N, cells) arrays: `presence` 0/1 and the `shape` / `colour` / `size` class
    index, -1 where the cell is empty. ValueError for an object outside the vocabulary."""
    cells = len(vocabulary.positions)
    targets = {"presence": np.zeros((len(scenes), cells), np.int64)}
    targets.update({name: np.full((len(scenes), cells), -1, np.int64) for name in ATTRIBUTE_HEADS})
    for row, text in enumerate(scenes):
        for obj in Scene.from_json(text).objects:
            try:
                cell = vocabulary.positions.index(obj.position)
                targets["presence"][row, cell] = 1
                for name in ATTRIBUTE_HEADS:
                    targets[name][row, cell] = vocabulary.classes(name).index(obj.attribute(name))
            except ValueError:
                raise ValueError(
                    f"scene {row} has an object the {vocabulary.difficulty} judge cannot name: {obj}"
                ) from None
    return targets


def judge_accuracy(judge: ImageJudge, images: np.ndarray, scenes: list[str]) -> dict:
    """The judge on images whose scenes are known: `presence` over all cells; `shape`, `colour` and `size` over
    the cells that hold an object; `object` = present and all three right. Also the counts, and shape accuracy
    by size and by whether the object carries a brand mark (the hardest case at 32 px: small and marked)."""
    if len(images) != len(scenes):
        raise ValueError(f"{len(images)} images but {len(scenes)} scenes")
    predicted = predict(judge, images)
    truth = scene_targets(scenes, judge.vocabulary)
    occupied = truth["presence"] == 1
    right = {name: predicted[name] == truth[name] for name in ATTRIBUTE_HEADS}
    whole = predicted["present"] & right["shape"] & right["colour"] & right["size"]
    table = {
        "images": len(images),
        "cells": int(occupied.size),
        "objects": int(occupied.sum()),
        "presence": _mean(predicted["present"] == occupied),
        **{name: _mean(right[name][occupied]) for name in ATTRIBUTE_HEADS},
        "object": _mean(whole[occupied]),
    }
    marked = np.zeros_like(occupied)
    for row, text in enumerate(scenes):
        for obj in Scene.from_json(text).objects:
            marked[row, judge.vocabulary.positions.index(obj.position)] = obj.mark is not None
    groups = {}
    for size_index, size in enumerate(judge.vocabulary.sizes):
        for mark, is_marked in (("marked", True), ("plain", False)):
            chosen = occupied & (truth["size"] == size_index) & (marked == is_marked)
            groups[f"{size} {mark}"] = {"objects": int(chosen.sum()), "shape": _mean(right["shape"][chosen])}
    table["shape_by_kind"] = groups
    return table


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if values.size else None


def _world(config: WorldConfig, folder: Path, progress: bool) -> Path:
    """`folder`, holding the world of `config` (generated unless a world of exactly that config is there)."""
    if (folder / WORLD_MANIFEST).exists():
        try:
            if load_manifest(folder)["config"] == asdict(config):
                return folder
        except RecapError:
            pass
    generate_world(config, folder, overwrite=True, progress=progress)
    return folder


def augment_batch(
    images: np.ndarray, targets: dict[str, np.ndarray], grid: int, rng: np.random.Generator, max_shift=2
):
    """A random half mirrored left-right (cells swap columns, their targets with them), every image shifted by up to
    `max_shift` px each way (edges repeated): (images, targets), new arrays."""
    images, targets = images.copy(), {name: values.copy() for name, values in targets.items()}
    mirror = rng.random(len(images)) < 0.5
    images[mirror] = images[mirror, :, ::-1]
    columns = np.arange(grid * grid).reshape(grid, grid)[:, ::-1].reshape(-1)
    for name in targets:
        targets[name][mirror] = targets[name][mirror][:, columns]
    if not max_shift:
        return images, targets
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), mode="edge")
    size = images.shape[1]
    for index, (dy, dx) in enumerate(rng.integers(0, 2 * max_shift + 1, size=(len(images), 2))):
        images[index] = padded[index, dy : dy + size, dx : dx + size]
    return images, targets


def _loss(logits: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    loss = functional.binary_cross_entropy_with_logits(logits["presence"], targets["presence"].float())
    for name in ATTRIBUTE_HEADS:
        loss = loss + functional.cross_entropy(logits[name].flatten(0, 1), targets[name].flatten(), ignore_index=-1)
    return loss


def _schedule(config: JudgeTrainingConfig):
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(config.steps - config.warmup_steps, 1)
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def load_worlds(config: JudgeTrainingConfig, *, progress: bool = True) -> tuple[Pairs, Pairs]:
    """(training pairs, held-out pairs) at `config.image_size`: the train world's sft split and the held-out
    world's eval split, generated into `config.worlds` (reused when there) or into a temporary folder."""
    temporary = None if config.worlds else Path(tempfile.mkdtemp(prefix="judge-worlds-"))
    worlds = Path(config.worlds) if config.worlds else temporary
    try:
        worlds.mkdir(parents=True, exist_ok=True)
        train = _world(config.train_world, worlds / f"train-seed-{config.train_world.seed}", progress)
        held_out = _world(config.held_out_world, worlds / f"held-out-seed-{config.held_out_world.seed}", progress)
        return (
            load_pairs(train / "sft", config.image_size, progress=progress),
            load_pairs(held_out / "eval", config.image_size, progress=progress),
        )
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def fit(judge: ImageJudge, train: Pairs, config: JudgeTrainingConfig, *, progress: bool = True) -> list[float]:
    """The training loop: `config.steps` AdamW steps on shuffled, augmented batches of `train`; the losses."""
    rng = np.random.default_rng(config.seed)
    targets = scene_targets(train.scenes, judge.vocabulary)
    decay = [p for p in judge.parameters() if p.ndim >= 2]
    no_decay = [p for p in judge.parameters() if p.ndim < 2]  # biases and batch-norm gains
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    judge.train()
    order, cursor, losses = rng.permutation(len(train)), 0, []
    bar = progress_bar(range(config.steps), desc="training judge", unit="step", disable=not progress)
    for _ in bar:
        if cursor + config.batch_size > len(order):
            order, cursor = rng.permutation(len(train)), 0
        rows = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        images, batch_targets = train.images[rows], {name: values[rows] for name, values in targets.items()}
        if config.augment:
            images, batch_targets = augment_batch(images, batch_targets, judge.vocabulary.grid, rng)
        logits = judge(to_tensor(images, config.image_size))
        loss = _loss(logits, {name: torch.from_numpy(values) for name, values in batch_targets.items()})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    judge.eval()
    return losses


def train_judge(config: JudgeTrainingConfig, *, progress: bool = True) -> dict:
    """Generate (or reuse) the two worlds, train, measure on the held-out world, write the judge to `config.out`
    and return the summary (also in OUT/training_summary.json). RecapError, after writing, if the held-out
    accuracy is below MIN_ACCURACY on any attribute. Runs on `config.threads` torch threads (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        torch.manual_seed(config.seed)
        started = time.perf_counter()
        train, held_out = load_worlds(config, progress=progress)
        data_seconds = time.perf_counter() - started
        judge = ImageJudge(
            world_vocabulary(config.train_world.difficulty, config.image_size),
            width=config.width,
            hidden=config.hidden,
        )
        started = time.perf_counter()
        losses = fit(judge, train, config, progress=progress)
        training_seconds = time.perf_counter() - started
        accuracy = judge_accuracy(judge, held_out.images, held_out.scenes)
    finally:
        torch.set_num_threads(threads)
    recorded = asdict(replace(config, out=str(config.out), worlds=None))
    summary = {
        "accuracy": accuracy,
        "min_accuracy": MIN_ACCURACY,
        "held_out": {"world": asdict(config.held_out_world), "split": "eval", "images": len(held_out)},
        "training": {
            "world": asdict(config.train_world),
            "split": "sft",
            "images": len(train),
            "parameters": parameter_count(judge),
            "first_loss": round(losses[0], 4),
            "final_loss": round(float(np.mean(losses[-50:])), 4),
            "data_seconds": round(data_seconds, 1),
            "training_seconds": round(training_seconds, 1),
            "seconds_per_step": round(training_seconds / config.steps, 3),
            "config": {k: v for k, v in recorded.items() if k not in ("train_world", "held_out_world")},
        },
    }
    out = Path(config.out)
    save_judge(judge, out, {"accuracy": accuracy, "min_accuracy": MIN_ACCURACY, "training": summary["training"]})
    write_json_atomic(out / "training_summary.json", summary)
    failing = below_bar(accuracy)
    if failing:
        raise RecapError(
            f"the judge written to {out} is below the {MIN_ACCURACY} bar on held-out images: {failing} "
            f"(full table in {out / 'training_summary.json'}); do not let it judge"
        )
    return summary

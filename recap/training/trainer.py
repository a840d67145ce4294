"""The training loop that recap's text-image trainers share (Recap-CLIP, Recap-DiT).

A trainer subclass says what its model is (`build_model`), how to optimise it (`build_optimizer`), what one
step computes (`loss`), what runs after each step (`after_step`: CLIP's logit-scale clamp, the DiT's EMA),
what else its checkpoint holds (`extra_state`) and what it exports (`export`). This class owns the rest, once:

- the data: webdataset shards joined with a caption table through `CaptionMix` (the recaption job's reader
  and decode stage, the paper's caption mixing with `p_original`); a world split is turned into both first;
- a step-based loop with open_clip_train's warm-up + cosine learning rate and a progress bar;
- an atomic checkpoint every `checkpoint_every` steps that a rerun resumes from (the data restart at the next
  epoch's order);
- `workers` > 1: the same loop on Ray Train workers (DDP: gloo on CPUs, NCCL on GPUs), each reading its own
  share of the shards.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from recap.console import progress_bar
from recap.errors import RecapError
from recap.io_utils import write_json_atomic
from recap.training.clip_data import CaptionMix, read_captions, world_training_data


@dataclass(kw_only=True)
class MixedCaptionConfig:
    """What every trainer reads and how it steps. `train` is a world split folder or webdataset shards (then
    `captions` names their caption table, joined on uid); `p_original` is the share of original captions."""

    train: str
    out: str
    captions: str | None = None
    p_original: float = 0.5
    steps: int = 1000
    batch_size: int = 128
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    seed: int = 0
    checkpoint_every: int = 200
    max_grad_norm: float | None = None  # clip the gradients' global norm to this before each step
    threads: int = 0  # torch CPU threads (0: torch's default)
    workers: int = 1  # 1: this process, no Ray; more: Ray Train workers with DDP, --batch-size rows each
    cpus_per_worker: float = 1.0
    gpus: bool = False  # one GPU per worker (NCCL) instead of CPUs (gloo)
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_original <= 1.0:
            raise ValueError(f"p_original must be in [0, 1], got {self.p_original}")
        for name in ("steps", "batch_size", "checkpoint_every", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps), got {self.warmup_steps} for {self.steps} steps")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


class MixedCaptionTrainer:
    """`run()` trains in this process or on Ray Train workers and returns the training summary (also written
    to OUT/training_summary.json). Subclasses set `config_class`, `run_name` and the hooks below."""

    config_class: type[MixedCaptionConfig] = MixedCaptionConfig
    run_name = "train"

    def __init__(self, config: MixedCaptionConfig, *, progress: bool = True) -> None:
        import torch

        self.config, self.progress, self.torch = config, progress, torch
        if config.threads:
            torch.set_num_threads(config.threads)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.out / "checkpoint" / "state.pt"

    # --- what a subclass says ---------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        """The side of the square uint8 images the model is fed."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Runs once in the driver before any worker starts (CLIP trains its tokenizer here)."""

    def build_model(self):
        """The model to train, new or from `init` weights; the checkpoint is loaded into it afterwards."""
        raise NotImplementedError

    def build_optimizer(self, model):
        raise NotImplementedError

    def loss(self, model, images: np.ndarray, texts: list[str], step: int, rank: int):
        """The loss of one batch: uint8 images (N, S, S, 3) and their texts. `model` may be DDP-wrapped."""
        raise NotImplementedError

    def after_step(self, model) -> None:
        """Runs after each optimiser step on the bare model."""

    def extra_state(self) -> dict:
        """More for the checkpoint (the DiT's EMA weights)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what `extra_state` saved."""

    def export(self, model) -> None:
        """Write the trained model under OUT (rank 0, after the last step)."""
        raise NotImplementedError

    def summary_extra(self) -> dict:
        return {}

    # --- the shared parts ---------------------------------------------------------------------------------
    @cached_property
    def training_data(self) -> tuple[list, dict]:
        """(shards, uid -> captions), read once per trainer (the driver's, or each Ray Train worker's)."""
        from recap.stages.webdataset_reader import list_shards

        config = world_split_as_shards(self.config, self.out / "data", self.image_size)
        if not config.captions:
            raise RecapError(f"--train {config.train} is not a world split: give its caption table with --captions")
        return list_shards(config.train), read_captions(config.captions)

    def _save_checkpoint(self, model, optimizer, step: int, epoch: int) -> None:
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.checkpoint.with_suffix(".tmp")
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "epoch": epoch}
        self.torch.save(dict(state, config=asdict(self.config), **self.extra_state()), temporary)
        os.replace(temporary, self.checkpoint)

    def run(self) -> dict:
        """Prepare, train in this process (`workers` 1) or on Ray Train, export, summarise."""
        config = self.config
        started = time.perf_counter()
        self.training_data  # noqa: B018 - read (and a world split converted) once, here, before any worker
        self.prepare()
        workers = [self.train_worker(rank=0, world_size=1)] if config.workers == 1 else train_on_ray(self)
        lead = workers[0]
        summary = {
            "steps": lead["steps"],
            "steps_this_run": lead["steps_this_run"],
            "first_loss": lead["first_loss"],
            "final_loss": lead["final_loss"],
            "images_per_s": round(sum(worker["images_per_s"] or 0 for worker in workers), 1),
            "caption_choices": dict(sum((Counter(worker["caption_choices"]) for worker in workers), Counter())),
            "workers": workers,
            "seconds": round(time.perf_counter() - started, 1),
            "config": asdict(config),
            "model": str(self.out / "model"),
            **self.summary_extra(),
        }
        write_json_atomic(self.out / "training_summary.json", summary)
        return summary

    def train_worker(self, *, rank: int, world_size: int, samples=None) -> dict:
        """The training loop of one worker: rank 0 of 1 in-process, or one Ray Train worker of `world_size`.
        Rank 0 writes the checkpoint and the exported model; every rank writes OUT/workers/rank-N.json.

        `samples` replaces the shards' `CaptionMix` with any object of the same surface (`epoch(e)` yielding
        (image, text, uid), `counts`, `shards`): the input-pipeline benchmark feeds samples held in memory."""
        from open_clip_train.scheduler import cosine_lr

        torch, config = self.torch, self.config
        self.rank, self.world_size = rank, world_size
        shards, captions = self.training_data
        bare = self.build_model()
        step = epoch = 0
        state = (
            torch.load(self.checkpoint, map_location="cpu", weights_only=False) if self.checkpoint.exists() else None
        )
        if state is not None:
            bare.load_state_dict(state["model"])
            self.load_extra_state(state)
            step, epoch = state["step"], state["epoch"] + 1  # the data restart at the next epoch's order
        model = bare
        if world_size > 1:
            import ray.train.torch

            model = ray.train.torch.prepare_model(model)  # DDP over the workers' process group
        optimizer = self.build_optimizer(model)
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
        schedule = cosine_lr(optimizer, config.learning_rate, config.warmup_steps, config.steps)
        data = samples or CaptionMix(
            shards,
            captions,
            image_size=self.image_size,
            p_original=config.p_original,
            seed=config.seed,
            rank=rank,
            world_size=world_size,
        )
        model.train()
        losses, images_seen, first_step = [], 0, step
        progress = self.progress and rank == 0
        bar = progress_bar(total=config.steps, initial=step, desc=self.run_name, unit="step", disable=not progress)
        loop_started = time.perf_counter()
        while step < config.steps:
            batch = []
            for image, text, _ in data.epoch(epoch):
                batch.append((image, text))
                if len(batch) < config.batch_size:
                    continue
                schedule(step)
                loss = self.loss(model, np.stack([b[0] for b in batch]), [b[1] for b in batch], step, rank)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                self.after_step(bare)
                step, images_seen, batch = step + 1, images_seen + config.batch_size, []
                losses.append(loss.item())
                rate = images_seen / (time.perf_counter() - loop_started)
                bar.set_postfix(loss=f"{losses[-1]:.3f}", img_s=f"{rate:.0f}")
                bar.update(1)
                if rank == 0 and (step % config.checkpoint_every == 0 or step == config.steps):
                    self._save_checkpoint(bare, optimizer, step, epoch)
                if step >= config.steps:
                    break
            if step == first_step and not losses:
                raise RecapError(f"an epoch gave fewer than --batch-size {config.batch_size} usable samples")
            epoch += 1
        bar.close()
        if rank == 0:
            self.export(bare.eval())
        result = {
            "rank": rank,
            "shards": [shard.name for shard in data.shards],
            "samples": sum(data.counts.values()),
            "steps": step,
            "steps_this_run": step - first_step,
            "epochs_started": epoch,
            "first_loss": round(losses[0], 4) if losses else None,
            "final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4) if losses else None,  # mean of the last 10
            "images_per_s": round(images_seen / (time.perf_counter() - loop_started), 1) if losses else None,
            "caption_choices": dict(data.counts),
        }
        (self.out / "workers").mkdir(exist_ok=True)
        write_json_atomic(self.out / "workers" / f"rank-{rank}.json", result)
        return result


def train_on_ray(trainer) -> list[dict]:
    """`trainer`'s loop on `config.workers` Ray Train workers (DDP); each worker builds its own trainer of the same
    class and config and runs `train_worker(rank, world_size)`, reading its own share of the data, and writes
    OUT/workers/rank-N.json, which this returns in rank order. OUT must be on a filesystem every worker sees (one
    machine, or shared storage). Any trainer with `config_class`, `run_name`, `config`, `out`, `progress` and
    `train_worker` runs here."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from recap.executors.ray_executor import connect

    config, out = trainer.config, trainer.out
    for stale in (out / "workers").glob("rank-*.json"):  # an earlier run's, perhaps with more workers
        stale.unlink()
    connect(config.ray_address, log_to_driver=trainer.progress)
    resources = {"CPU": config.cpus_per_worker, **({"GPU": 1} if config.gpus else {})}
    trainer_class = f"{type(trainer).__module__}:{type(trainer).__qualname__}"
    ray_trainer = TorchTrainer(
        _ray_train_worker,
        train_loop_config={"trainer": trainer_class, "config": asdict(config)},
        scaling_config=ScalingConfig(num_workers=config.workers, use_gpu=config.gpus, resources_per_worker=resources),
        run_config=RunConfig(name=trainer.run_name, storage_path=str((out / "ray").resolve())),
    )
    try:
        ray_trainer.fit()
    except Exception as error:  # noqa: BLE001 - Ray Train wraps worker errors; say which run failed
        raise RecapError(f"Ray Train failed: {type(error).__name__}: {str(error)[:2000]}") from error
    return [json.loads(path.read_text()) for path in sorted((out / "workers").glob("rank-*.json"))]


def _ray_train_worker(payload: dict) -> None:
    """Ray Train's per-worker function: the trainer's in-process loop, given this worker's rank."""
    import ray.train

    module, name = payload["trainer"].split(":")
    trainer_class = getattr(importlib.import_module(module), name)
    context = ray.train.get_context()
    trainer = trainer_class(trainer_class.config_class(**payload["config"]), progress=False)
    trainer.train_worker(rank=context.get_world_rank(), world_size=context.get_world_size())


def world_split_as_shards(config: MixedCaptionConfig, folder: str | Path, image_size: int) -> MixedCaptionConfig:
    """`config` reading webdataset shards + a caption table: when `train` is a world split, they are made from it
    in `folder` (once; `world_training_data` reuses a finished folder), else `config` itself."""
    train = Path(config.train)
    if not (train / "truth.parquet").exists():
        return config
    shards, table = world_training_data(train.parent, train.name, folder, image_size)
    return replace(config, train=str(shards), captions=str(table))

"""Train CLIP with open_clip on a mix of original captions and recaptions (Recap-CLIP).

    recap train-clip --train runs/demo/shards --captions runs/demo/captions --p-original 0.8 --out runs/clip

The parts are open_clip's: its model factory (`create_model_and_transforms`, the tiny configs registered
with it), its tokenizer classes, `open_clip.ClipLoss`, and open_clip_train's warm-up + cosine schedule
(`open_clip_train.scheduler.cosine_lr`); the AdamW parameter groups (no weight decay on gains, biases and the
logit scale) and the logit-scale clamp at ln(100) follow `open_clip_train.main` / `train_one_epoch`. What is
recap's: the data (the job's reader and decode stage, with the paper's caption mixing, `clip_data.py`), a
step-based loop with a checkpoint that resumes, and the export as an open_clip folder.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm import tqdm

from recap.errors import RecapError
from recap.io_utils import write_json_atomic
from recap.training.clip_data import CaptionMix, read_captions, world_training_data


@dataclass(kw_only=True)
class ClipTrainingConfig:
    """What `recap train-clip` trains. `train` is a world split folder or webdataset shards (then `captions`
    names their caption table, joined on uid)."""

    train: str
    out: str
    captions: str | None = None
    model: str = "recap-clip-tiny"  # an open_clip model name (tiny configs registered) or a CLIP folder
    init: str | None = None  # a checkpoint for `model` to start from (real models); None: random
    p_original: float = 0.5
    steps: int = 1000
    batch_size: int = 128
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    seed: int = 0
    checkpoint_every: int = 200
    tokenizer_vocab: int = 1024  # BPE size for tiny configs (must match their text_cfg.vocab_size)
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


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """open_clip_train's rule: no weight decay on gains, biases, norms and the logit scale."""
    exclude = [p for n, p in model.named_parameters() if p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n]
    exclude += [p for n, p in model.named_parameters() if "logit_scale" in n and not any(p is e for e in exclude)]
    ids = {id(p) for p in exclude}
    include = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    return [{"params": exclude, "weight_decay": 0.0}, {"params": include, "weight_decay": weight_decay}]


class ClipTrainer:
    """`run()` trains in this process or on Ray Train workers and returns the training summary (also written to
    OUT/training_summary.json)."""

    def __init__(self, config: ClipTrainingConfig, *, progress: bool = True) -> None:
        import torch

        self.config, self.progress, self.torch = config, progress, torch
        if config.threads:
            torch.set_num_threads(config.threads)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.out / "checkpoint" / "state.pt"

    @cached_property
    def image_size(self) -> int:
        return model_image_size(self.config.model)

    @cached_property
    def training_data(self) -> tuple[list, dict]:
        """(shards, uid -> captions), read once per trainer (the driver's, or each Ray Train worker's)."""
        from recap.stages.webdataset_reader import list_shards

        config = world_split_as_shards(self.config, self.out / "data")
        if not config.captions:
            raise RecapError(f"--train {config.train} is not a world split: give its caption table with --captions")
        return list_shards(config.train), read_captions(config.captions)

    def _tokenizer_folder(self, captions: dict) -> Path | None:
        """For a tiny config, OUT/tokenizer (a BPE trained on the captions the first time); else None."""
        from recap.models.clip import register_configs, train_clip_tokenizer

        if self.config.model not in register_configs():
            return None
        folder = self.out / "tokenizer"
        if not (folder / "tokenizer.json").exists():
            texts = [text for pair in captions.values() for text in pair if text]
            train_clip_tokenizer(texts, self.config.tokenizer_vocab, folder)
        return folder

    def _model(self, captions: dict):
        """(model, tokenizer, model_cfg): from the checkpoint, or new (a tiny config gets a BPE trained on the
        captions), or an open_clip model with its own tokenizer and optional `init` weights."""
        from recap.models.clip import load_clip, new_clip

        config = self.config
        tokenizer_folder = self._tokenizer_folder(captions)
        if tokenizer_folder is not None:
            model, _, tokenizer, model_cfg = new_clip(config.model, tokenizer_folder, seed=config.seed)
            if config.init:
                model.load_state_dict(self.torch.load(config.init, map_location="cpu"))
        else:
            model, _, tokenizer = load_clip(config.model, pretrained=config.init)
            model_cfg = _model_cfg(config.model)
        return model, tokenizer, model_cfg

    def _save_checkpoint(self, model, optimizer, step: int, epoch: int) -> None:
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.checkpoint.with_suffix(".tmp")
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "epoch": epoch}
        self.torch.save(dict(state, config=asdict(self.config)), temporary)
        os.replace(temporary, self.checkpoint)

    def run(self) -> dict:
        """Prepare data and tokenizer here, train in this process (`workers` 1) or on Ray Train, export, summarise."""
        config = self.config
        started = time.perf_counter()
        self._tokenizer_folder(self.training_data[1])  # trained once, here, before any worker starts
        if config.workers == 1:
            workers = [self.train_worker(rank=0, world_size=1)]
        else:
            workers = self._train_on_ray()
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
        }
        write_json_atomic(self.out / "training_summary.json", summary)
        return summary

    def _train_on_ray(self) -> list[dict]:
        """The same loop on `workers` Ray Train workers (DDP: gloo on CPUs, NCCL on GPUs); each reads its own
        share of the shards. OUT must be on a filesystem every worker sees (one machine, or shared storage)."""
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        config = self.config
        for stale in (self.out / "workers").glob("rank-*.json"):  # an earlier run's, perhaps with more workers
            stale.unlink()
        if not ray.is_initialized():
            ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=self.progress)
        resources = {"CPU": config.cpus_per_worker, **({"GPU": 1} if config.gpus else {})}
        trainer = TorchTrainer(
            _ray_train_worker,
            train_loop_config={"config": asdict(config)},
            scaling_config=ScalingConfig(
                num_workers=config.workers, use_gpu=config.gpus, resources_per_worker=resources
            ),
            run_config=RunConfig(name="train-clip", storage_path=str((self.out / "ray").resolve())),
        )
        try:
            trainer.fit()
        except Exception as error:  # noqa: BLE001 - Ray Train wraps worker errors; say which run failed
            raise RecapError(f"Ray Train failed: {type(error).__name__}: {str(error)[:2000]}") from error
        return [json.loads(path.read_text()) for path in sorted((self.out / "workers").glob("rank-*.json"))]

    def train_worker(self, *, rank: int, world_size: int, samples=None) -> dict:
        """The training loop of one worker: rank 0 of 1 in-process, or one Ray Train worker of `world_size`.
        Rank 0 writes the checkpoint and the exported model; every rank writes OUT/workers/rank-N.json.

        `samples` replaces the shards' `CaptionMix` with any object of the same surface (`epoch(e)` yielding
        (image, text, uid), `counts`, `shards`): the input-pipeline benchmark feeds samples held in memory."""
        import open_clip
        from open_clip_train.scheduler import cosine_lr

        from recap.models.clip import image_tensor, save_clip_folder

        torch, config = self.torch, self.config
        shards, captions = self.training_data
        model, tokenizer, model_cfg = self._model(captions)
        step = epoch = 0
        state = (
            torch.load(self.checkpoint, map_location="cpu", weights_only=False) if self.checkpoint.exists() else None
        )
        if state is not None:
            model.load_state_dict(state["model"])
            step, epoch = state["step"], state["epoch"] + 1  # the data restart at the next epoch's order
        bare = model
        if world_size > 1:
            import ray.train.torch

            model = ray.train.torch.prepare_model(model)  # DDP over the workers' process group
        optimizer = torch.optim.AdamW(
            parameter_groups(model, config.weight_decay), lr=config.learning_rate, betas=(0.9, 0.98), eps=1e-6
        )
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
        loss_fn = open_clip.ClipLoss(rank=rank, world_size=world_size)  # gathers the other workers' features
        model.train()
        losses, images_seen, first_step = [], 0, step
        progress = self.progress and rank == 0
        bar = tqdm(total=config.steps, initial=step, desc="train-clip", unit="step", disable=not progress)
        loop_started = time.perf_counter()
        while step < config.steps:
            batch = []
            for image, text, _ in data.epoch(epoch):
                batch.append((image, text))
                if len(batch) < config.batch_size:
                    continue
                schedule(step)
                images = image_tensor(np.stack([b[0] for b in batch]), bare)
                texts = tokenizer([b[1] for b in batch])
                image_features, text_features, logit_scale = model(images, texts)[:3]
                loss = loss_fn(image_features, text_features, logit_scale)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    bare.logit_scale.clamp_(0, math.log(100))  # as open_clip_train does, after each step
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
            save_clip_folder(bare.eval(), model_cfg, tokenizer, self.out / "model")
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


def _ray_train_worker(payload: dict) -> None:
    """Ray Train's per-worker function: the in-process loop, given this worker's rank."""
    import ray.train

    context = ray.train.get_context()
    trainer = ClipTrainer(ClipTrainingConfig(**payload["config"]), progress=False)
    trainer.train_worker(rank=context.get_world_rank(), world_size=context.get_world_size())


def _model_cfg(model: str) -> dict:
    """The open_clip config of a CLIP folder or a model name."""
    from recap.models.clip import CONFIG_FILE, model_config

    folder = Path(model.removeprefix("local-dir:"))
    if (folder / CONFIG_FILE).is_file():
        return json.loads((folder / CONFIG_FILE).read_text())["model_cfg"]
    return model_config(model)


def world_split_as_shards(config: ClipTrainingConfig, folder: str | Path) -> ClipTrainingConfig:
    """`config` reading webdataset shards + a caption table: when `train` is a world split, they are made from it
    in `folder` (once; `world_training_data` reuses a finished folder), else `config` itself."""
    train = Path(config.train)
    if not (train / "truth.parquet").exists():
        return config
    shards, table = world_training_data(train.parent, train.name, folder, model_image_size(config.model))
    return replace(config, train=str(shards), captions=str(table))


def model_image_size(model: str) -> int:
    size = _model_cfg(model)["vision_cfg"]["image_size"]
    return size[0] if isinstance(size, list | tuple) else size

"""POUF: adapt a CLIP's zero-shot classifier to a target domain from its unlabeled images (`recap tune-clip`).

    recap tune-clip --method pouf --model runs/clip/model --target runs/shifted/eval --classes shape,colour \\
        --out runs/pouf

Each step draws a batch of target images (no label, caption or truth is ever read: `unlabeled_images.py`) and
minimises `recap.models.pouf.pouf_loss` between their features and the class prompts' features, averaged over
the class sets. `tune` "prompt" (the default) learns CoOp contexts per class set (`PromptLearner`: one per
template, ensembled) plus the logit scale, the CLIP frozen; the image features are then computed once, as the
image tower never changes. `tune` "model" tunes every weight of the CLIP with the templates' prompts.

The defaults are the authors' (korawat-tanwisuth/POUF `pouf_lvm/examples/pouf/image_classification/pouf.py`,
`clip_classifier.py`, `pouf.sh`): SGD, momentum 0.9, Nesterov, weight decay 1e-3 on every tuned parameter,
the learning rate decayed per step by (1 + 2e-4 t)^-0.75, batch 96. Their group rates (prompt 0.1, logit
scale and model 5e-5) are multiplied by their --lr 0.01 once more inside their LambdaLR, so they train with
1e-3 for the context and 5e-7 for the logit scale and the whole model: those effective rates are the defaults
here (`learning_rate`, `model_learning_rate`), with no hidden factor.

Where this differs from the authors: the prompts start as eval-retrieval's five ensembled templates (so the
tuning starts from the zero-shot classifier the project reports; theirs is "a photo of a {}." alone, which
`templates` can set); a step count (not 10 epochs of 500 iterations, sized for Office-31 at 224 px); no
random-resized-crop or flip (a crop of a 64 px world image can cut its objects out); the batch shrinks to the
target's size when it is smaller; nothing is chosen on labels (they keep the epoch with the best labelled
target accuracy: a protocol flaw not copied). The tuned CLIP is the last step's.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from recap.console import progress_bar
from recap.errors import RecapError
from recap.io_utils import write_json_atomic
from recap.models.clip import ZERO_SHOT_TEMPLATES
from recap.models.pouf import INFORMATION_MAXIMISATION_WEIGHT, TRANSPORT_WEIGHT, pouf_loss
from recap.models.prompt_learner import PromptLearner, ensemble, save_learned_prompts
from recap.training.class_sets import resolve_class_sets
from recap.training.unlabeled_images import is_world_split, load_unlabeled_images

TUNE_MODES = ("prompt", "model")
METHODS = ("pouf",)


@dataclass(kw_only=True)
class PoufConfig:
    """What `recap tune-clip --method pouf` tunes, on what, and how (the authors' defaults, effective rates)."""

    model: str  # a CLIP folder (open_clip local-dir layout)
    target: str  # unlabeled images: a world split, webdataset shards or a folder of images
    out: str
    classes: list[str] = field(default_factory=list)  # brand / shape / colour (world) or class files
    world: str | None = None  # the world whose class lists to use when `target` is not a world split
    tune: str = "prompt"
    templates: tuple[str, ...] = ZERO_SHOT_TEMPLATES  # ensembled; the contexts start as their words
    steps: int = 300
    batch_size: int = 96
    learning_rate: float = 1e-3  # the context vectors (prompt mode)
    model_learning_rate: float = 5e-7  # the logit scale, and every weight in model mode
    momentum: float = 0.9
    weight_decay: float = 1e-3
    decay_gamma: float = 2e-4  # learning rate x (1 + decay_gamma t)^-decay_power
    decay_power: float = 0.75
    transport_weight: float = TRANSPORT_WEIGHT
    information_maximisation_weight: float = INFORMATION_MAXIMISATION_WEIGHT
    limit: int | None = None  # at most this many target images
    seed: int = 0
    checkpoint_every: int = 100
    threads: int = 0

    def __post_init__(self) -> None:
        if self.tune not in TUNE_MODES:
            raise ValueError(f"tune must be one of {TUNE_MODES}, got {self.tune!r}")
        for name in ("steps", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("learning_rate", "model_learning_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if not self.classes:
            raise ValueError("classes must name at least one class set (brand, shape, colour or a class file)")
        self.templates = tuple(self.templates or ZERO_SHOT_TEMPLATES)


def learning_rate_factor(step: int, gamma: float, power: float) -> float:
    """The authors' per-step decay (their LambdaLR without its extra 0.01): (1 + gamma t)^-power."""
    return (1.0 + gamma * step) ** -power


def batch_rows(step: int, images: int, batch: int, seed: int) -> np.ndarray:
    """The rows of step `step`: epochs of a seeded permutation, the last incomplete batch dropped (as the
    authors' loader), so a resumed run draws the same batches."""
    per_epoch = images // batch
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(images)
    return order[position * batch : (position + 1) * batch]


class PoufTuner:
    """`run()` tunes, checkpoints every `checkpoint_every` steps (a rerun with the same OUT resumes), writes
    OUT/model (an open_clip folder; prompt mode: the unchanged CLIP with OUT/model/pouf_prompt.pt) and returns
    the summary, also written to OUT/training_summary.json."""

    def __init__(self, config: PoufConfig, *, progress: bool = True) -> None:
        self.config, self.progress = config, progress
        if config.threads:
            torch.set_num_threads(config.threads)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.out / "checkpoint" / "state.pt"

    def setup(self) -> None:
        """Load the CLIP, the target's images and the class sets; build the learners and the optimizer."""
        from recap.models.clip import CONFIG_FILE, load_clip

        config = self.config
        folder = Path(config.model.removeprefix("local-dir:"))
        if not (folder / CONFIG_FILE).is_file():
            raise RecapError(f"--model {config.model} is not a CLIP folder (no {CONFIG_FILE})")
        self.model_folder = folder
        self.model, _, self.tokenizer = load_clip(str(folder))
        self.model_cfg = json.loads((folder / CONFIG_FILE).read_text())["model_cfg"]
        side = self.model.visual.image_size
        side = side[0] if isinstance(side, tuple) else side
        world = config.world or (str(Path(config.target).parent) if is_world_split(config.target) else None)
        self.class_sets = resolve_class_sets(config.classes, world)
        self.images, self.skipped = load_unlabeled_images(
            config.target, side, limit=config.limit, progress=self.progress
        )
        self.batch = min(config.batch_size, len(self.images))
        for parameter in self.model.parameters():
            parameter.requires_grad_(config.tune == "model")
        self.model.logit_scale.requires_grad_(True)
        self.logit_scale_before = float(self.model.logit_scale.detach())
        if config.tune == "prompt":
            self.learners = {
                name: PromptLearner(self.model, self.tokenizer, classes, config.templates)
                for name, classes in self.class_sets.items()
            }
            contexts = [c for learner in self.learners.values() for c in learner.contexts if c.numel()]
            groups = [
                {"params": contexts, "lr": config.learning_rate},
                {"params": [self.model.logit_scale], "lr": config.model_learning_rate},
            ]
            self.image_features = self._frozen_image_features()
        else:
            self.learners = {}
            self.prompt_tokens = {
                name: [self.tokenizer([template.format(c) for c in classes]) for template in config.templates]
                for name, classes in self.class_sets.items()
            }
            groups = [{"params": list(self.model.parameters()), "lr": config.model_learning_rate}]
        for group in groups:
            group["initial_lr"] = group["lr"]
        self.optimizer = torch.optim.SGD(
            groups, lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
        )

    def _frozen_image_features(self, batch: int = 256) -> torch.Tensor:
        """Prompt mode: the image tower is frozen and sees no augmentation, so every image is encoded once."""
        from recap.models.clip import image_tensor

        self.model.eval()
        with torch.no_grad():
            parts = [
                self.model.encode_image(image_tensor(self.images[start : start + batch], self.model))
                for start in range(0, len(self.images), batch)
            ]
        return torch.cat(parts)

    def step_loss(self, rows: np.ndarray):
        """POUF's loss on the images `rows`, averaged over the class sets: (total, transport, IM)."""
        from recap.models.clip import image_tensor

        config = self.config
        if config.tune == "prompt":
            image_features = self.image_features[torch.from_numpy(rows)]
            text = {name: learner.text_features(self.model) for name, learner in self.learners.items()}
        else:
            image_features = self.model.encode_image(image_tensor(self.images[rows], self.model))
            text = {
                name: ensemble([self.model.encode_text(tokens) for tokens in per_template])
                for name, per_template in self.prompt_tokens.items()
            }
        parts = [
            pouf_loss(
                image_features,
                features,
                self.model.logit_scale,
                transport_weight=config.transport_weight,
                information_maximisation_weight=config.information_maximisation_weight,
            )
            for features in text.values()
        ]
        return tuple(torch.stack(values).mean() for values in zip(*parts, strict=True))

    def _trainable_state(self) -> dict:
        if self.config.tune == "model":
            return {"model": self.model.state_dict()}
        contexts = {name: [c.detach().clone() for c in learner.contexts] for name, learner in self.learners.items()}
        return {"contexts": contexts, "logit_scale": self.model.logit_scale.detach().clone()}

    def _load_trainable_state(self, state: dict) -> None:
        if self.config.tune == "model":
            self.model.load_state_dict(state["model"])
            return
        with torch.no_grad():
            for name, learner in self.learners.items():
                for context, value in zip(learner.contexts, state["contexts"][name], strict=True):
                    context.copy_(value)
            self.model.logit_scale.copy_(state["logit_scale"])

    def _save_checkpoint(self, step: int) -> None:
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.checkpoint.with_suffix(".tmp")
        state = {"step": step, "optimizer": self.optimizer.state_dict(), "config": asdict(self.config)}
        torch.save(dict(state, **self._trainable_state()), temporary)
        temporary.replace(self.checkpoint)

    def _resume(self) -> int:
        if not self.checkpoint.exists():
            return 0
        state = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        for name in ("model", "target", "classes", "tune", "templates", "seed"):
            if state["config"][name] != getattr(self.config, name):
                raise RecapError(
                    f"{self.out} holds a tune-clip run with another {name} ({state['config'][name]!r}); "
                    "give a new --out"
                )
        self._load_trainable_state(state)
        self.optimizer.load_state_dict(state["optimizer"])
        return state["step"]

    def run(self) -> dict:
        config, started = self.config, time.perf_counter()
        self.setup()
        step = first_step = self._resume()
        history: list[tuple[float, float, float]] = []
        if config.tune == "model":
            self.model.train()
        bar = progress_bar(total=config.steps, initial=step, desc="tune-clip", unit="step", disable=not self.progress)
        while step < config.steps:
            factor = learning_rate_factor(step, config.decay_gamma, config.decay_power)
            for group in self.optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
            total, transport, information = self.step_loss(batch_rows(step, len(self.images), self.batch, config.seed))
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            step += 1
            history.append((total.item(), transport.item(), information.item()))
            bar.set_postfix(loss=f"{history[-1][0]:.4f}")
            bar.update(1)
            if step % config.checkpoint_every == 0 or step == config.steps:
                self._save_checkpoint(step)
        bar.close()
        self.model.eval()
        self.export()
        summary = self.summary(step, step - first_step, history, time.perf_counter() - started)
        write_json_atomic(self.out / "training_summary.json", summary)
        return summary

    def export(self) -> None:
        """OUT/model: model mode, the tuned CLIP; prompt mode, a copy of the input folder (the CLIP is unchanged)
        with the learned prompts beside it."""
        from recap.models.clip import save_clip_folder

        folder = self.out / "model"
        if self.config.tune == "model":
            save_clip_folder(self.model, self.model_cfg, self.tokenizer, folder)
            return
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(self.model_folder, folder, ignore=shutil.ignore_patterns("pouf_prompt.*"))
        record = {"method": "pouf", "base_model": str(self.model_folder), "target": self.config.target}
        record.update(steps=self.config.steps, images=len(self.images), batch_size=self.batch)
        save_learned_prompts(folder, self.learners, logit_scale=float(self.model.logit_scale.detach()), record=record)

    def summary(self, steps: int, steps_this_run: int, history: list, seconds: float) -> dict:
        def mean_of(rows: list, column: int) -> float | None:
            return round(float(np.mean([row[column] for row in rows])), 5) if rows else None

        return {
            "method": "pouf",
            "tune": self.config.tune,
            "steps": steps,
            "steps_this_run": steps_this_run,
            "images": len(self.images),
            "skipped_images": self.skipped,
            "batch_size": self.batch,
            "class_sets": self.class_sets,
            "first_loss": mean_of(history[:1], 0),
            "final_loss": mean_of(history[-10:], 0),  # mean of the last 10 steps
            "final_transport": mean_of(history[-10:], 1),
            "final_information_maximisation": mean_of(history[-10:], 2),
            "logit_scale": {"before": self.logit_scale_before, "after": float(self.model.logit_scale.detach())},
            "seconds": round(seconds, 1),
            "config": asdict(self.config),
            "model": str(self.out / "model"),
        }

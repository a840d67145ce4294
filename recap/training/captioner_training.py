"""`recap train-captioner`: the LLaVA recipe on a tiny model (or continued training of any HF LLaVA).

Stages, each resumable from the last checkpoint:
  vision     contrastive pretraining of the vision tower (a tiny CLIP standing in for OpenAI CLIP)
  text       language-model pretraining on the training texts (standing in for LLaMA-3's pretraining)
  projector  LLaVA stage 1: the projector alone learns on image / short-caption pairs
  full       LLaVA stage 2: projector + language model on detailed captions (vision tower frozen unless
             `unfreeze_vision`), with the paper's prompt, the alt-text-conditioned prompt and the short one
A stage with 0 steps is skipped; starting from an existing checkpoint (`init`) usually runs only `full`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from recap.console import echo, progress_bar
from recap.errors import RecapError
from recap.io_utils import write_json_atomic
from recap.models.prompts import DEFAULT_PROMPT, get_prompt
from recap.training.pairs import Pairs, load_pairs

STAGES = ("vision", "text", "projector", "full")
CHECKPOINT = "checkpoint"
FINAL = "model"


@dataclass(kw_only=True)
class CaptionerTrainingConfig:
    """Everything that decides a training run; saved beside the checkpoint."""

    train: str
    out: str
    eval: str | None = None
    init: str | None = None  # an HF LLaVA folder to continue from; None builds a tiny model from `spec`
    spec: str = "tiny"
    seed: int = 0
    batch_size: int = 32
    vision_steps: int = 600
    text_steps: int = 300
    projector_steps: int = 400
    full_steps: int = 4000
    learning_rate: float = 1e-3
    vision_learning_rate_scale: float = 0.1  # for the tower when unfrozen in `full`
    warmup_steps: int = 100
    weight_decay: float = 0.01
    unfreeze_vision: bool = False
    prompt_mix: dict[str, float] = field(
        default_factory=lambda: {DEFAULT_PROMPT: 0.7, "alt-text-conditioned": 0.2, "short": 0.1}
    )
    eval_every: int = 1000
    eval_images: int = 200
    checkpoint_every: int = 250
    threads: int = 0  # 0: torch's default

    def __post_init__(self) -> None:
        for name in ("vision_steps", "text_steps", "projector_steps", "full_steps", "warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "eval_every", "checkpoint_every", "eval_images"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        for prompt_id in self.prompt_mix:
            get_prompt(prompt_id)
        if sum(self.prompt_mix.values()) <= 0:
            raise ValueError(f"prompt_mix needs a positive weight, got {self.prompt_mix}")

    def stage_steps(self, stage: str) -> int:
        return getattr(self, f"{stage}_steps")


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10%."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class _Batcher:
    """Deterministic batches: the indices of step s depend only on (seed, stage, s), so resuming is exact."""

    def __init__(self, size: int, batch_size: int, seed: int, stage: str) -> None:
        self.size, self.batch_size, self.key = size, batch_size, [seed, STAGES.index(stage)]

    def indices(self, step: int) -> np.ndarray:
        start = step * self.batch_size
        epoch, offset = divmod(start, self.size)
        order = np.random.default_rng(self.key + [epoch]).permutation(self.size)
        picked = order[offset : offset + self.batch_size]
        if len(picked) < self.batch_size:
            following = np.random.default_rng(self.key + [epoch + 1]).permutation(self.size)
            picked = np.concatenate([picked, following[: self.batch_size - len(picked)]])
        return picked


class CaptionerTrainer:
    """Runs the stages of a `CaptionerTrainingConfig`; `run()` returns the final metrics."""

    def __init__(self, config: CaptionerTrainingConfig, *, progress: bool = True) -> None:
        import torch
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # one bar per checkpoint write drowns the training bar
        self.config, self.progress, self.torch = config, progress, torch
        if config.threads:
            torch.set_num_threads(config.threads)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state = {"completed": [], "stage": None, "step": 0, "history": [], "seconds": 0.0}
        self._load_or_build()
        image_size = self.model.config.vision_config.image_size
        self.train = load_pairs(config.train, image_size, progress=progress)
        self.eval = (
            load_pairs(config.eval, image_size, limit=config.eval_images, progress=progress) if config.eval else None
        )
        processor = self.processor.image_processor
        self.mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
        self.std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
        self.image_token_count = self._count_image_tokens()
        self.difficulty = self._difficulty() if any(get_prompt(p).uses_question for p in config.prompt_mix) else None
        self.tokenizer = self.processor.tokenizer
        self.eos = self.tokenizer.eos_token_id
        self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos

    def _difficulty(self):
        """The training world's difficulty, for the questions of a "reasoning" prompt-mix share (which needs a world
        split: its scenes are the answers)."""
        from recap.world.generate import load_manifest
        from recap.world.vocabulary import get_difficulty

        if self.train.scenes is None:
            raise RecapError(
                f"prompt_mix 'reasoning' asks questions about each training image's scene: --train "
                f"{self.config.train} must be a world split (e.g. WORLD/sft)"
            )
        return get_difficulty(load_manifest(Path(self.config.train).parent)["config"]["difficulty"])

    # ----- model and checkpoints -------------------------------------------------------------------------
    def _load_or_build(self) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        checkpoint = self._recover_checkpoint()
        self.clip = None
        if (checkpoint / "trainer_state.json").exists():
            self.state = json.loads((checkpoint / "trainer_state.json").read_text())
            source = checkpoint
        elif self.config.init:
            source = Path(self.config.init)
        else:
            from recap.models.tiny_llava import TINY_SPECS, build_tiny_llava
            from recap.training.tokenizer_corpus import tokenizer_corpus

            if self.config.spec not in TINY_SPECS:
                raise RecapError(f"unknown tiny spec {self.config.spec!r}; choose one of {sorted(TINY_SPECS)}")
            spec, seed = TINY_SPECS[self.config.spec], self.config.seed
            self.model, self.processor = build_tiny_llava(spec, texts=tokenizer_corpus(seed), seed=seed)
            return
        self.processor = AutoProcessor.from_pretrained(source)
        self.model = AutoModelForImageTextToText.from_pretrained(source, dtype=self.torch.float32)
        if (source / "clip.pt").exists():
            from recap.training.vision_pretrain import build_clip

            self.clip = build_clip(self.model.config, self.processor.tokenizer)
            self.clip.load_state_dict(self.torch.load(source / "clip.pt"))

    def _recover_checkpoint(self) -> Path:
        """Finish a checkpoint swap that a crash interrupted; trainer_state.json is written last, so a folder
        that has it is complete."""
        final, temporary, old = self.out / CHECKPOINT, self.out / f".{CHECKPOINT}.tmp", self.out / f".{CHECKPOINT}.old"
        if not final.exists():
            for candidate in (temporary, old):
                if (candidate / "trainer_state.json").exists():
                    os.replace(candidate, final)
                    break
        return final

    def _save_checkpoint(self, optimizer, scheduler) -> None:
        """Write the whole state to a temporary folder, then swap it in: a crash never leaves half a checkpoint."""
        from recap.models.tiny_llava import save_checkpoint

        temporary = self.out / f".{CHECKPOINT}.tmp"
        if temporary.exists():
            shutil.rmtree(temporary)
        save_checkpoint(self.model, self.processor, temporary)
        if self.clip is not None:
            self.torch.save(self.clip.state_dict(), temporary / "clip.pt")
        if optimizer is not None:
            self.torch.save(
                {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, temporary / "optimizer.pt"
            )
        (temporary / "trainer_state.json").write_text(json.dumps(self.state, indent=2))
        final = self.out / CHECKPOINT
        old = self.out / f".{CHECKPOINT}.old"
        if final.exists():
            # a crash during the last swap's cleanup can leave an old folder behind; replace() needs it gone
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(temporary, final)
        shutil.rmtree(old, ignore_errors=True)

    # ----- batches -------------------------------------------------------------------------------------------
    def _count_image_tokens(self) -> int:
        from PIL import Image

        size = self.model.config.vision_config.image_size
        ids = self.processor(text="<image>", images=Image.new("RGB", (size, size)), add_special_tokens=False)
        return sum(1 for token in ids["input_ids"][0] if token == self.model.config.image_token_id)

    def _pixels(self, indices: np.ndarray, pairs: Pairs):
        images = self.torch.from_numpy(pairs.images[indices]).permute(0, 3, 1, 2).float() / 255.0
        return (images - self.mean) / self.std

    def _prompt_ids(self, instruction: str) -> list[int]:
        from recap.models.captioner import render_prompt

        text = render_prompt(self.processor, instruction).replace("<image>", "<image>" * self.image_token_count)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _pad(self, sequences: list[list[int]], labels: list[list[int]]):
        torch = self.torch
        length = max(map(len, sequences))
        ids = torch.full((len(sequences), length), self.pad)
        target = torch.full((len(sequences), length), -100)
        mask = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, (sequence, label) in enumerate(zip(sequences, labels, strict=True)):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            target[row, : len(label)] = torch.tensor(label)
            mask[row, : len(sequence)] = 1
        return ids, target, mask

    def _caption_batch(self, stage: str, step: int, indices: np.ndarray):
        """Prompt + target token ids for a captioning stage; the loss covers only the target."""
        if stage == "projector":
            presets = ["short"] * len(indices)
        else:
            rng = np.random.default_rng([self.config.seed, 99, step])
            mix = self.config.prompt_mix
            names = list(mix)
            weights = np.array([mix[n] for n in names]) / sum(mix.values())
            presets = [names[i] for i in rng.choice(len(names), size=len(indices), p=weights)]
        sequences, labels = [], []
        question_rng = np.random.default_rng([self.config.seed, 28, step])
        for index, preset_id in zip(indices, presets, strict=True):
            preset = get_prompt(preset_id)
            short = preset_id == "short" and self.train.short_captions is not None
            target_text = self.train.short_captions[index] if short else self.train.captions[index]
            alt = (self.train.alt_texts[index] if self.train.alt_texts else None) or ""
            question = None
            if preset.uses_question:  # LLaVA's instruction tuning: a world question about this training image
                question, target_text = self._question(index, question_rng)
            prompt = self._prompt_ids(preset.render(alt if preset.uses_alt_text else None, question))
            target = self.tokenizer(target_text, add_special_tokens=False)["input_ids"] + [self.eos]
            sequences.append(prompt + target)
            labels.append([-100] * len(prompt) + target)
        return self._pad(sequences, labels)

    def _question(self, index: int, rng: np.random.Generator) -> tuple[str, str]:
        """(question, reference response) about training image `index`, from its scene's truth."""
        from recap.world.reasoning import any_question, reference_response
        from recap.world.scene import Scene

        question = any_question(Scene.from_json(self.train.scenes[index]), rng, self.difficulty)
        return question.question, reference_response(question)

    def _text_batch(self, indices: np.ndarray):
        texts = []
        for index in indices:
            options = [self.train.captions[index]]
            options += [self.train.short_captions[index]] if self.train.short_captions else []
            options += [self.train.alt_texts[index]] if self.train.alt_texts and self.train.alt_texts[index] else []
            texts.append(options[index % len(options)])
        sequences = [
            [self.tokenizer.bos_token_id] + self.tokenizer(t, add_special_tokens=False)["input_ids"] + [self.eos]
            for t in texts
        ]
        return self._pad(sequences, sequences)

    # ----- stages --------------------------------------------------------------------------------------------
    def _trainable(self, stage: str):
        model = self.model
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        groups = []
        projector = list(model.model.multi_modal_projector.parameters())
        language = list(model.model.language_model.parameters()) + list(model.lm_head.parameters())
        if stage == "text":
            groups.append({"params": language})
        elif stage == "projector":
            groups.append({"params": projector})
        elif stage == "full":
            groups.append({"params": projector + language})
            if self.config.unfreeze_vision:
                groups.append(
                    {
                        "params": list(model.model.vision_tower.parameters()),
                        "lr_scale": self.config.vision_learning_rate_scale,
                    }
                )
        for group in groups:
            for parameter in group["params"]:
                parameter.requires_grad_(True)
        return groups

    def _loss(self, stage: str, step: int, batcher: _Batcher):
        indices = batcher.indices(step)
        if stage == "vision":
            from recap.training.vision_pretrain import contrastive_loss

            texts = [self.train.captions[i] for i in indices]
            tokens = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            ids, _, mask = self._pad([t[:127] + [self.eos] for t in tokens], [[] for _ in tokens])
            return contrastive_loss(self.clip, self._pixels(indices, self.train), ids, mask)
        if stage == "text":
            ids, labels, mask = self._text_batch(indices)
            return self.model(input_ids=ids, attention_mask=mask, labels=labels).loss
        ids, labels, mask = self._caption_batch(stage, step, indices)
        return self.model(
            input_ids=ids, attention_mask=mask, pixel_values=self._pixels(indices, self.train), labels=labels
        ).loss

    def _run_stage(self, stage: str) -> None:
        torch = self.torch
        config = self.config
        total = config.stage_steps(stage)
        if stage == "vision":
            from recap.training.vision_pretrain import build_clip

            if self.clip is None:
                torch.manual_seed(config.seed)
                self.clip = build_clip(self.model.config, self.tokenizer)
            groups = [{"params": list(self.clip.parameters())}]
        else:
            groups = self._trainable(stage)
        for group in groups:
            group["lr"] = config.learning_rate * group.get("lr_scale", 1.0)
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _lr_factor(step, total, min(config.warmup_steps, total // 5 or 1))
        )
        start = 0
        checkpoint = self.out / CHECKPOINT
        if self.state["stage"] == stage and (checkpoint / "optimizer.pt").exists():
            saved = torch.load(checkpoint / "optimizer.pt")
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            start = self.state["step"]
        self.state["stage"] = stage
        module = self.clip if stage == "vision" else self.model
        module.train()
        batcher = _Batcher(len(self.train), config.batch_size, config.seed, stage)
        bar = progress_bar(
            range(start, total), initial=start, total=total, desc=f"{stage:>9}", unit="step", disable=not self.progress
        )
        smoothed = None
        began = time.perf_counter()
        for step in bar:
            loss = self._loss(stage, step, batcher)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            optimizer.step()
            scheduler.step()
            value = float(loss.detach())
            smoothed = value if smoothed is None else 0.95 * smoothed + 0.05 * value
            bar.set_postfix(loss=f"{smoothed:.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
            done = step + 1
            if done % 50 == 0 or done == total:
                self.state["history"].append({"stage": stage, "step": done, "loss": round(smoothed, 4)})
            if stage == "full" and self.eval is not None and (done % config.eval_every == 0 or done == total):
                metrics = self.evaluate()
                self.state["history"].append({"stage": stage, "step": done, **metrics})
                echo(f"  step {done}: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
                module.train()
            if done % config.checkpoint_every == 0 or done == total:
                self.state["step"] = done
                self.state["seconds"] += time.perf_counter() - began
                began = time.perf_counter()
                self._save_checkpoint(optimizer, scheduler)
        if stage == "vision":
            from recap.training.vision_pretrain import copy_vision_weights

            copy_vision_weights(self.clip, self.model)
        self.state["completed"].append(stage)
        self.state["stage"], self.state["step"] = None, 0
        self._save_checkpoint(None, None)

    def evaluate(self, prompt: str = DEFAULT_PROMPT) -> dict:
        """Caption the eval images greedily and score them against the world's ground truth."""
        from recap.models.captioner import CaptionerConfig
        from recap.models.transformers_backend import TransformersCaptioner
        from recap.world.quality import score_captions
        from recap.world.scene import Scene

        if self.eval is None or self.eval.scenes is None:
            return {}
        from PIL import Image

        captioner = TransformersCaptioner(
            CaptionerConfig(
                model=str(self.out), prompt=prompt, batch_size=64, max_new_tokens=96, device="cpu", dtype="float32"
            ),
            model=self.model,
            processor=self.processor,
        )
        images = [Image.fromarray(image) for image in self.eval.images]
        results = captioner.caption(images, alt_texts=self.eval.alt_texts)
        scenes = [Scene.from_json(scene) for scene in self.eval.scenes]
        summary = score_captions([r.text for r in results], scenes).summary()
        keys = (
            "object_precision",
            "object_recall",
            "attribute_precision",
            "attribute_recall",
            "shape_precision",
            "colour_precision",
            "size_precision",
            "position_precision",
            "mean_words",
        )
        return {key: summary[key] for key in keys}

    def run(self) -> dict:
        """Run the remaining stages, save the final HF folder in `out/model`, return the final metrics."""
        started, seconds_before = time.perf_counter(), self.state["seconds"]
        for stage in STAGES:
            if stage in self.state["completed"] or self.config.stage_steps(stage) == 0:
                continue
            self._run_stage(stage)
        metrics = self.evaluate() if self.eval is not None else {}
        from recap.models.tiny_llava import save_checkpoint

        final = self.out / FINAL
        if final.exists():
            shutil.rmtree(final)
        record = {
            "config": asdict(self.config),
            "stages_completed": self.state["completed"],
            "train_seconds": round(seconds_before + time.perf_counter() - started, 1),
            "eval_metrics": metrics,
            "history": self.state["history"],
        }
        save_checkpoint(self.model, self.processor, final, extra=record)
        write_json_atomic(self.out / "training_summary.json", record)
        return metrics

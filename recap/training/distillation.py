"""Distil the Recap-DiT into a one-step generator: SiD, SiD-LSG guidance and SiDA (`recap distill-t2i`).

    recap distill-t2i --teacher recap/assets/dit-tiny --prompts runs/sweep/captions --out runs/distill

Three networks, as in SiD (mingyuanzhou/SiD, SiD-LSG `training/sid_training_loop.py`): the frozen teacher, a
fake-score network and the generator, both copies of the teacher, and an EMA of the generator. Each iteration is
one fake-score step on generated images (made without the generator's gradient), then one generator step on
fresh prompts and noise; the math is `recap.models.distillation`'s. The generator is the teacher's denoiser
applied once, at the step whose noise level is `start_sigma` (2.5), to pure noise.

SiD and SiD-LSG are data-free: they read prompts (a caption table's recaptions, or a text file), never images.
`method="sida"` adds SiDA's adversarial term with real images (`train`: the recaptioned shards): the fake-score
network's pooled final hidden states are the discriminator's logits.

Where this differs from the authors' code, and why:
- the timestep of both steps is drawn from the teacher's own training distribution, uniform over the DDPM
  steps (SiD-LSG draws from U{20..979}, Stable Diffusion's range);
- the fake-score loss is the teacher's own, the mean squared error against its prediction target (SiD-LSG sums
  it over pixels: a scale Adam mostly ignores);
- each iteration draws its prompts, noise and timesteps from (seed, rank, iteration), so a resumed run draws
  what an unbroken one would; SiD-LSG samples prompts with an infinite shuffled sampler;
- SiDA's warm-up (no generator step for 100k images, no adversarial term before 200k, in runs of tens of millions
  of images) is given in images and defaults to the same shares of this run (see `DistillationConfig`);
- float32 throughout, so SiD-LSG's fp16 gradient clipping by value is not needed; NaN gradients are zeroed as
  there. SiDA's clipping of the fake network's gradients by value 1 is kept.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from recap.console import progress_bar
from recap.errors import RecapError
from recap.io_utils import write_json_atomic
from recap.models.t2i import T2I_CONFIG
from recap.report import display_path
from recap.training.distillation_config import DistillationConfig, read_prompts


class ScoreWithLogits:
    """Calls a DiT and also returns SiDA's discriminator logits: the input of its output projection (the final
    hidden states after the norm and modulation), pooled over tokens. A forward pre-hook reads them."""

    def __init__(self, transformer) -> None:
        self.transformer, self.hidden = transformer, None
        transformer.proj_out.register_forward_pre_hook(self._keep)

    def _keep(self, module, inputs) -> None:
        self.hidden = inputs[0]

    def logits(self):
        from recap.models.distillation import discriminator_logits

        return discriminator_logits(self.hidden)


class DistillationTrainer:
    """`run()` distils in this process or on Ray Train workers and returns the summary (also OUT/
    distillation_summary.json); OUT/model is a one-step model folder `recap sample` and `recap eval-t2i` load."""

    config_class = DistillationConfig
    run_name = "distill-t2i"

    def __init__(self, config: DistillationConfig, *, progress: bool = True) -> None:
        import torch

        self.config, self.progress, self.torch = config, progress, torch
        if config.threads:
            torch.set_num_threads(config.threads)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.checkpoint = self.out / "checkpoint" / "state.pt"

    # --- the networks ------------------------------------------------------------------------------------
    def build(self) -> None:
        """Load the teacher; make the fake-score network and the generator (copies of the teacher, or the
        generator from `init`), the generator's EMA and the schedule's constants."""
        from diffusers import DDPMScheduler

        from recap.models.distillation import sigma_of, start_timestep
        from recap.models.t2i import load_t2i

        torch, config = self.torch, self.config
        teacher = load_t2i(config.teacher)
        if teacher.one_step:
            raise RecapError(f"{config.teacher} is a one-step generator already: distil a multi-step model")
        if teacher.process != "ddpm":  # SiD's score identity is that of the Gaussian process
            raise RecapError(
                f"{config.teacher} was trained with beta diffusion: SiD distils Gaussian-diffusion models"
            )
        self.teacher_model = teacher
        self.teacher = teacher.transformer.eval().requires_grad_(False)
        self.conditioner, self.codec = teacher.conditioner, teacher.codec
        self.scheduler = DDPMScheduler.from_config(teacher.scheduler_config)
        self.prediction = self.scheduler.config.prediction_type
        self.alphas_cumprod = self.scheduler.alphas_cumprod.float()
        self.start = start_timestep(self.alphas_cumprod, config.start_sigma)
        self.start_abar = float(self.alphas_cumprod[self.start])
        self.start_sigma = float(sigma_of(self.alphas_cumprod[self.start : self.start + 1])[0])
        self.fake = copy.deepcopy(self.teacher).train().requires_grad_(True)
        if config.init:
            initial = load_t2i(config.init)
            if not initial.one_step:
                raise RecapError(f"--init {config.init} is not a one-step generator (made by recap distill-t2i)")
            self.generator = initial.transformer.train().requires_grad_(True)
        else:
            self.generator = copy.deepcopy(self.teacher).train().requires_grad_(True)
        self.generator_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        self.fake_logits = ScoreWithLogits(self.fake)
        fake_rate = config.fake_learning_rate or config.learning_rate
        self.fake_optimizer = torch.optim.Adam(self.fake.parameters(), lr=fake_rate, betas=(0.0, 0.999))
        self.generator_optimizer = torch.optim.Adam(
            self.generator.parameters(), lr=config.learning_rate, betas=(0.0, 0.999)
        )

    # --- one iteration's draws ---------------------------------------------------------------------------
    def draws(self, iteration: int, rank: int, phase: str) -> dict:
        """Prompts, noise and timesteps for one step, from (seed, rank, iteration, phase) alone."""
        torch, config = self.torch, self.config
        seed = np.random.SeedSequence([config.seed, rank, iteration, {"fake": 0, "generator": 1}[phase]])
        generator = torch.Generator().manual_seed(int(seed.generate_state(1)[0]))
        count = config.batch_size
        picks = torch.randint(0, len(self.prompts), (count,), generator=generator).tolist()
        texts = [self.prompts[index] for index in picks]
        dropped = torch.rand(count, generator=generator) < config.prompt_dropout
        if phase == "fake" and any(kappa != 1 for kappa in config.kappas):
            texts = ["" if drop else text for text, drop in zip(texts, dropped.tolist(), strict=True)]
        shape = (count, self.codec.channels, self.codec.sample_size, self.codec.sample_size)
        return {
            "texts": texts,
            "z": torch.randn(shape, generator=generator),
            "noise": torch.randn(shape, generator=generator),
            "timesteps": torch.randint(0, self.scheduler.config.num_train_timesteps, (count,), generator=generator),
        }

    def encode(self, texts: list[str]):
        """Features and masks of [""] * N + texts, padded alike (the unconditional half first)."""
        return self.conditioner([""] * len(texts) + list(texts))

    def generate(self, network, z, encoded):
        """The one-step generator's images (denoiser space) for noise `z`, conditioned without guidance."""
        from recap.models.t2i import one_step_clean

        features, mask = encoded
        half = len(z)
        return one_step_clean(network, z, features[half:], mask[half:], self.start, self.start_abar, self.prediction)

    def predict(self, network, x_t, timesteps, encoded, scale: float):
        """The network's guided output at x_t (uncond + scale (cond - uncond); one call of 2N rows, or N when
        `scale` is 1)."""
        from recap.models.denoiser import denoise
        from recap.models.distillation import guided

        features, mask = encoded
        half = len(x_t)
        if scale == 1:
            return denoise(network, x_t, timesteps, features[half:], mask[half:])
        both = denoise(
            network, self.torch.cat([x_t, x_t]), self.torch.cat([timesteps, timesteps]), features, mask
        ).chunk(2)
        return guided(both[0], both[1], scale)

    def estimate(self, network, x_t, timesteps, encoded, scale: float):
        """The network's guided clean-image estimate at x_t (guidance on the estimate equals guidance on the noise:
        `recap.models.distillation`)."""
        from recap.models.distillation import clean_estimate

        output = self.predict(network, x_t, timesteps, encoded, scale)
        return clean_estimate(output, x_t, self.alphas_cumprod[timesteps], self.prediction)

    def _cond_logits(self, rows: int):
        """The discriminator logits of the conditional half of the fake network's last call."""
        return self.fake_logits.logits()[-rows:]

    # --- the two losses -----------------------------------------------------------------------------------
    def fake_loss(self, iteration: int, rank: int, fake=None, real=None):
        """The fake-score step's loss: the teacher's own loss on generated images under kappa1 (the generator
        gets no gradient). With SiDA's `real` (uint8 images, texts) the same call also reads the noised real
        images (with the same noise and timesteps) for the discriminator, whose loss is added."""
        from recap.models.denoiser import denoise
        from recap.models.distillation import discriminator_loss, fake_score_loss, guided, noisy
        from recap.models.t2i import training_target

        torch, kappa1 = self.torch, self.config.kappas[0]
        fake = fake or self.fake
        draw = self.draws(iteration, rank, "fake")
        timesteps, noise = draw["timesteps"], draw["noise"]
        with torch.no_grad():
            images = self.generate(self.generator, draw["z"], self.encode(draw["texts"]))
        x_t = noisy(images, noise, self.alphas_cumprod[timesteps])
        target = training_target(self.scheduler, images, noise, timesteps)
        if real is None:
            loss = fake_score_loss(self.predict(fake, x_t, timesteps, self.encode(draw["texts"]), kappa1), target)
            return loss, {"fake": loss.detach().item()}
        # One call of the fake network (unconditional, conditional, real rows): DDP allows one forward per backward.
        real_images, real_texts = real
        rows = len(images)
        real_t = noisy(self.codec.encode(real_images), noise, self.alphas_cumprod[timesteps])
        features, mask = self.conditioner([""] * rows + list(draw["texts"]) + list(real_texts))
        inputs = torch.cat([x_t, x_t, real_t])
        outputs = denoise(fake, inputs, torch.cat([timesteps] * 3), features, mask).split(rows)
        loss = fake_score_loss(guided(outputs[0], outputs[1], kappa1), target)
        logits = self.fake_logits.logits()
        adversarial = discriminator_loss(logits[2 * rows :], logits[rows : 2 * rows])
        return loss + adversarial, {"fake": loss.detach().item(), "discriminator": adversarial.detach().item()}

    def generator_loss(self, iteration: int, rank: int, generator=None, adversarial: bool = False):
        """The generator step's loss (SiD's, with kappa2/3 on the fake network and kappa4 on the teacher); the
        gradient reaches the generator through its images and both frozen networks' inputs. With `adversarial`
        (SiDA), the objective with the non-saturating term."""
        from recap.models.distillation import (
            generator_adversarial_loss,
            noisy,
            sid_generator_loss,
            sid_weight,
            sida_generator_objective,
        )

        config = self.config
        _, kappa2, kappa3, kappa4 = config.kappas
        generator = generator or self.generator
        draw = self.draws(iteration, rank, "generator")
        encoded = self.encode(draw["texts"])
        images = self.generate(generator, draw["z"], encoded)
        timesteps = draw["timesteps"]
        x_t = noisy(images, draw["noise"], self.alphas_cumprod[timesteps])
        self.fake.requires_grad_(False)
        try:
            y_fake = self.estimate(self.fake, x_t, timesteps, encoded, kappa2)
            logits = self._cond_logits(len(images)) if adversarial else None
            second = None if kappa3 == kappa2 else self.estimate(self.fake, x_t, timesteps, encoded, kappa3)
            y_real = self.estimate(self.teacher, x_t, timesteps, encoded, kappa4)
        finally:
            self.fake.requires_grad_(True)
        loss = sid_generator_loss(images, y_real, y_fake, alpha=config.alpha, y_fake_second=second)
        terms = {"generator": loss.detach().item()}
        if config.method != "sida":
            return loss, terms
        gan = None
        if adversarial:
            pixels = images[0].numel()
            gan = generator_adversarial_loss(logits, sid_weight(images, y_real), pixels)
            terms["adversarial"] = gan.detach().item()
        return sida_generator_objective(loss, gan, sid_scale=config.sid_scale, gan_scale=config.gan_scale), terms

    # --- the loop ----------------------------------------------------------------------------------------
    def _save_checkpoint(self, iteration: int, images_seen: int) -> None:
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.checkpoint.with_suffix(".tmp")
        state = {
            "generator": self.generator.state_dict(),
            "generator_ema": self.generator_ema.state_dict(),
            "fake": self.fake.state_dict(),
            "generator_optimizer": self.generator_optimizer.state_dict(),
            "fake_optimizer": self.fake_optimizer.state_dict(),
            "iteration": iteration,
            "images_seen": images_seen,
            "config": asdict(self.config),
        }
        self.torch.save(state, temporary)
        os.replace(temporary, self.checkpoint)

    def _load_checkpoint(self) -> tuple[int, int]:
        if not self.checkpoint.exists():
            return 0, 0
        state = self.torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        for name in ("generator", "generator_ema", "fake", "generator_optimizer", "fake_optimizer"):
            getattr(self, name).load_state_dict(state[name])
        return state["iteration"], state["images_seen"]

    def _iteration(self, iteration: int, rank: int, fake, generator, real, train_generator: bool, adversarial: bool):
        """One fake-score step, then (after SiDA's warm-up) one generator step; returns the losses."""
        config = self.config
        self.fake_optimizer.zero_grad(set_to_none=True)
        loss, terms = self.fake_loss(iteration, rank, fake, next(real) if real is not None else None)
        loss.backward()
        _clean_gradients(self.fake, clip_value=1.0 if config.method == "sida" else None)
        self.fake_optimizer.step()
        if train_generator:
            self.generator_optimizer.zero_grad(set_to_none=True)
            loss, generator_terms = self.generator_loss(iteration, rank, generator, adversarial)
            loss.backward()
            _clean_gradients(self.generator)
            self.generator_optimizer.step()
            terms.update(generator_terms)
        return terms

    @property
    def history_file(self) -> Path:
        return self.out / "history.jsonl"

    def _append_history(self, rows: list[dict]) -> None:
        with open(self.history_file, "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row) + "\n" for row in rows)

    def _trim_history(self, iteration: int) -> None:
        """Drop the rows after `iteration` (the checkpoint a resume starts from) that a killed run wrote."""
        if not self.history_file.exists():
            return
        rows = [json.loads(line) for line in self.history_file.read_text().splitlines() if line.strip()]
        kept = [row for row in rows if row["iteration"] <= iteration]
        if len(kept) != len(rows):
            self.history_file.write_text("".join(json.dumps(row) + "\n" for row in kept))

    def _real_batches(self, rank: int, world_size: int):
        """SiDA's real images with their recaptions, endlessly, through the shared shard reader."""
        from recap.training.clip_data import CaptionMix

        config = self.config
        shards, captions = self._real_data
        mix = CaptionMix(
            shards, captions, image_size=self.codec.image_size, p_original=0.0, seed=config.seed, rank=rank,
            world_size=world_size,
        )  # fmt: skip
        epoch, batch = 0, []
        while True:
            for image, text, _ in mix.epoch(epoch):
                batch.append((image, text))
                if len(batch) == config.batch_size:
                    yield np.stack([b[0] for b in batch]), [b[1] for b in batch]
                    batch = []
            epoch += 1

    def prepare_data(self) -> None:
        """The prompts (this rank's share is taken in `train_worker`) and, for SiDA, the real shards."""
        config = self.config
        self.all_prompts = read_prompts(config.prompts, config.prompt_column)
        self._real_data = None
        if config.method == "sida":
            from recap.stages.webdataset_reader import list_shards
            from recap.training.clip_data import read_captions
            from recap.training.trainer import MixedCaptionConfig, world_split_as_shards

            image_size = json.loads((Path(config.teacher) / T2I_CONFIG).read_text())["image_size"]
            shards_config = world_split_as_shards(
                MixedCaptionConfig(train=config.train, out="", captions=config.prompts), self.out / "data", image_size
            )
            self._real_data = list_shards(shards_config.train), read_captions(shards_config.captions)

    def train_worker(self, *, rank: int, world_size: int) -> dict:
        """The distillation loop of one worker (rank 0 of 1 in-process, or a Ray Train worker). Rank 0 writes the
        checkpoint, the snapshots and the model; every rank writes OUT/workers/rank-N.json."""
        from recap.models.distillation import ema_beta, sida_phase

        config = self.config
        self.build()
        if not hasattr(self, "all_prompts"):
            self.prepare_data()
        self.prompts = self.all_prompts[rank::world_size] or self.all_prompts
        iteration, images_seen = self._load_checkpoint()
        first_iteration = iteration
        fake, generator = self.fake, self.generator
        if world_size > 1:
            import ray.train.torch

            fake, generator = ray.train.torch.prepare_model(fake), ray.train.torch.prepare_model(generator)
        real = self._real_batches(rank, world_size) if config.method == "sida" else None
        generator_warmup, gan_warmup = config.warmups
        progress = self.progress and rank == 0
        bar = progress_bar(
            total=config.iterations, initial=iteration, desc=self.run_name, unit="it", disable=not progress
        )
        self._trim_history(iteration)
        pending, last, started = [], None, time.perf_counter()
        images_per_iteration = config.batch_size * world_size
        while iteration < config.iterations:
            train_generator, adversarial = sida_phase(images_seen, generator_warmup, gan_warmup)
            terms = self._iteration(iteration, rank, fake, generator, real, train_generator, adversarial)
            if train_generator:
                beta = ema_beta(images_per_iteration, images_seen, config.ema_halflife_images, config.ema_rampup)
                _ema_update(self.generator_ema, self.generator, beta)
            iteration, images_seen = iteration + 1, images_seen + images_per_iteration
            last = {"iteration": iteration, "images": images_seen, **{k: round(v, 5) for k, v in terms.items()}}
            pending.append(last)
            bar.set_postfix({name: f"{value:.3g}" for name, value in terms.items()})
            bar.update(1)
            if rank == 0 and (iteration % config.checkpoint_every == 0 or iteration == config.iterations):
                self._append_history(pending)  # the losses up to the checkpoint, which a resume starts from
                pending = []
                self._save_checkpoint(iteration, images_seen)
            if rank == 0 and config.snapshot_every and iteration % config.snapshot_every == 0:
                self.export(self.out / "snapshots" / f"images-{images_seen:08d}", images_seen)
        bar.close()
        seconds = time.perf_counter() - started
        if rank == 0:
            self.export(self.out / "model", images_seen)
        done = iteration - first_iteration
        result = {
            "rank": rank,
            "iterations": iteration,
            "iterations_this_run": done,
            "images_seen": images_seen,
            "seconds": round(seconds, 1),
            "seconds_per_iteration": round(seconds / done, 3) if done else None,
            "last": last,
        }
        (self.out / "workers").mkdir(exist_ok=True)
        write_json_atomic(self.out / "workers" / f"rank-{rank}.json", result)
        return result

    def export(self, folder: Path, images_seen: int) -> None:
        """The EMA generator as a one-step model folder (weights in float32)."""
        from recap.models.t2i import TextToImage

        teacher_info = {k: v for k, v in self.teacher_model.info.items() if not k.startswith("guidance_scale")}
        info = {
            **teacher_info,
            "weights": "ema",
            "one_step": {"start_timestep": self.start, "sigma": round(self.start_sigma, 4)},
            "distillation": {
                **asdict(self.config),
                "teacher": display_path(self.config.teacher),  # recap/assets/dit-tiny, not this machine's path
                "images_seen": images_seen,
                "kappas": list(self.config.kappas),
            },
            "teacher_training": teacher_info.get("training"),
        }
        info.pop("training", None)
        model = TextToImage(
            self.generator_ema, self.conditioner, self.codec, dict(self.teacher_model.scheduler_config), info
        )
        model.save(folder)

    def run(self) -> dict:
        """Distil in this process (`workers` 1) or on Ray Train; write and return the summary."""
        from recap.training.trainer import train_on_ray

        config = self.config
        started = time.perf_counter()
        self.prepare_data()
        workers = [self.train_worker(rank=0, world_size=1)] if config.workers == 1 else train_on_ray(self)
        summary = {
            "method": config.method,
            "kappas": list(config.kappas),
            "start_timestep": getattr(self, "start", None),
            "start_sigma": getattr(self, "start_sigma", None),
            "prompts": len(self.all_prompts),
            "workers": workers,
            "seconds": round(time.perf_counter() - started, 1),
            "config": asdict(config),
            "model": str(self.out / "model"),
        }
        if summary["start_timestep"] is None:  # trained on Ray: read the start back from the model
            one_step = json.loads((self.out / "model" / "recap_t2i.json").read_text())["one_step"]
            summary.update(start_timestep=one_step["start_timestep"], start_sigma=one_step["sigma"])
        write_json_atomic(self.out / "distillation_summary.json", summary)
        return summary


def _ema_update(averaged, current, beta: float) -> None:
    """averaged <- beta averaged + (1 - beta) current, parameter by parameter."""
    import torch

    with torch.no_grad():
        for average, parameter in zip(averaged.parameters(), current.parameters(), strict=True):
            average.copy_(parameter.detach().lerp(average, beta))


def _clean_gradients(network, clip_value: float | None = None) -> None:
    """NaN and infinite gradients zeroed / bounded as SiD's code does; optionally clipped by value."""
    import torch

    for parameter in network.parameters():
        if parameter.grad is not None:
            torch.nan_to_num(parameter.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=parameter.grad)
    if clip_value is not None:
        torch.nn.utils.clip_grad_value_(network.parameters(), clip_value)

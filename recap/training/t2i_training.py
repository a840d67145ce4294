"""Train Recap-DiT: a text-to-image DiT (or LEGO stack) on a mix of original captions and recaptions.

    recap train-t2i --train runs/demo/shards --captions runs/demo/captions --p-original 0.0 --out runs/dit-p0

The data path and the caption mixing are train-clip's (`trainer.py`: the job's reader and decode stage, the
paper's `p_original`, resume, Ray Train workers); what is the DiT's: diffusers' PixArt DiT on a frozen open_clip
text tower (`recap.models.t2i`), the DDPM loss on velocity (or noise) targets, caption dropout (the empty
caption, so that the model learns the unconditional prediction classifier-free guidance needs), EMA weights
(diffusers' `EMAModel` with its warm-up, which suits short runs), exported as the model's weights, and, with
`cbdm_tau`, CBDM's class-balancing regulariser (`recap.models.cbdm`) for long-tailed data. A LEGO stack
(`--model lego-pg`, `recap.models.lego`) is trained with deep supervision: the loss averages every brick's. With
`process="beta"` the Gaussian process is replaced by beta diffusion (`recap.models.beta_diffusion`): the KLUB loss
on x0 predicted from z_t's whitened logit, and the training images' mean saved for the sampler to start from.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recap.training.trainer import MixedCaptionConfig, MixedCaptionTrainer

PROCESSES = ("ddpm", "beta")
BETA_LOSSES = ("klub", "elbo")


@dataclass(kw_only=True)
class T2ITrainingConfig(MixedCaptionConfig):
    """What `recap train-t2i` trains: the shared data and step settings, and the DiT."""

    # The world recipe's defaults (benchmarks/RESULTS.md, "Recap-DiT"): 8-px patches (2.2x the steps of 4-px
    # ones per second) predicting the clean image, at 1e-3 with clipped gradients.
    model: str = "recap-dit-tiny-8"  # a DIT_PRESETS size or a LEGO_PRESETS stack (recap.models.denoiser_presets)
    text_encoder: str = "shipped:clip-tiny"  # a CLIP folder or an open_clip model name (with text_encoder_pretrained)
    text_encoder_pretrained: str | None = None
    image_size: int = 32
    vae: str | None = None  # a local diffusers AutoencoderKL folder: train on its latents (real data)
    caption_dropout: float = 0.1
    ema_decay: float = 0.9999  # the ceiling: with warm-up the decay is 1 - (1 + step) ** -0.75 below it
    weight_decay: float = 0.0
    max_text_chunks: int = 4
    text_chunking: str = "packed"  # or "sentences": each sentence encoded alone
    prediction: str = "sample"  # the clean image; or "v_prediction", "epsilon"
    steps: int = 2500
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    max_grad_norm: float | None = 1.0
    cbdm_tau: float = 0.0  # CBDM's regulariser weight (0: off; the authors use 1.0)
    # The diffusion process: "ddpm" (Gaussian, diffusers' schedule) or "beta" (beta diffusion, pixels only), whose
    # loss is the KL upper bound ("klub", the authors') or the negative ELBO's KL ("elbo", the paper's comparison).
    process: str = "ddpm"
    beta_loss: str = "klub"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.caption_dropout < 1.0:
            raise ValueError(f"caption_dropout must be in [0, 1), got {self.caption_dropout}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {self.image_size}")
        if self.cbdm_tau < 0:
            raise ValueError(f"cbdm_tau must be >= 0, got {self.cbdm_tau}")
        if self.process not in PROCESSES:
            raise ValueError(f"process must be one of {', '.join(PROCESSES)}, got {self.process!r}")
        if self.beta_loss not in BETA_LOSSES:
            raise ValueError(f"beta_loss must be one of {', '.join(BETA_LOSSES)}, got {self.beta_loss!r}")
        if self.process == "beta" and self.vae:
            raise ValueError("process 'beta' needs range-bounded pixels: it cannot train on VAE latents (vae)")
        if self.process == "beta" and self.cbdm_tau:
            raise ValueError("cbdm_tau is CBDM's regulariser on the Gaussian process's prediction: use process 'ddpm'")


class T2ITrainer(MixedCaptionTrainer):
    """The DiT on the shared loop; OUT/model is a `recap.models.t2i` folder with the EMA weights."""

    config_class = T2ITrainingConfig
    run_name = "train-t2i"
    config: T2ITrainingConfig

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def build_model(self):
        from diffusers.training_utils import EMAModel

        from recap.models.t2i import ImageCodec, new_denoiser, training_scheduler
        from recap.models.text_conditioner import TextConditioner

        config = self.config
        self.conditioner = TextConditioner(
            config.text_encoder,
            pretrained=config.text_encoder_pretrained,
            max_chunks=config.max_text_chunks,
            chunking=config.text_chunking,
        )
        self.codec = ImageCodec(config.image_size, config.vae)
        self.scheduler = training_scheduler(latent=config.vae is not None, prediction=config.prediction)
        transformer = new_denoiser(
            config.model,
            sample_size=self.codec.sample_size,
            channels=self.codec.channels,
            caption_channels=self.conditioner.width,
            seed=config.seed,
        )
        side = self.codec.sample_size  # the running sum of the training images: beta diffusion starts from their mean
        self.pixel_sum = self.torch.zeros(self.codec.channels, side, side, dtype=self.torch.float64)
        self.pixel_count = 0
        self.ema = EMAModel(
            transformer.parameters(), decay=config.ema_decay, use_ema_warmup=True, power=3 / 4, inv_gamma=1.0
        )
        return transformer

    def build_optimizer(self, model):
        config = self.config
        return self.torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

    def noised_batch(self, images: np.ndarray, texts: list[str], step: int, rank: int):
        """The step's draws: captions after dropout, x_t, t, the target, and the generator (for later draws).
        Noise, timesteps and dropout come from (seed, rank, step): a resumed run draws what an unbroken one would."""
        from recap.models.t2i import training_target

        torch, config = self.torch, self.config
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence([config.seed, rank, step]).generate_state(1)[0])
        )
        dropped = torch.rand(len(texts), generator=generator) < config.caption_dropout
        texts = ["" if drop else text for text, drop in zip(texts, dropped.tolist(), strict=True)]
        clean = self.codec.encode(images, generator)
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, self.scheduler.config.num_train_timesteps, (len(texts),), generator=generator)
        noisy = self.scheduler.add_noise(clean, noise, timesteps)
        return texts, noisy, timesteps, training_target(self.scheduler, clean, noise, timesteps), generator

    def loss(self, model, images: np.ndarray, texts: list[str], step: int, rank: int):
        from recap.models.denoiser import denoiser_outputs

        if self.config.process == "beta":
            return self._beta_loss(model, images, texts, step, rank)
        texts, noisy, timesteps, target, generator = self.noised_batch(images, texts, step, rank)
        if self.config.cbdm_tau:
            return self._cbdm_loss(model, texts, noisy, timesteps, target, generator)
        # A LEGO stack's every brick is supervised (deep supervision: each is a denoiser, so bricks can be skipped)
        features, mask = self.conditioner(texts)
        outputs = denoiser_outputs(model, noisy, timesteps, features, mask)
        return sum(self.torch.nn.functional.mse_loss(output, target) for output in outputs) / len(outputs)

    def _beta_loss(self, model, images: np.ndarray, texts: list[str], step: int, rank: int):
        """Beta diffusion's KLUB (or -ELBO) on x0 predicted from the whitened logit of z_t; draws from (seed, rank,
        step) as `noised_batch`'s. Also adds the batch to the running mean image that sampling starts from."""
        from recap.models.beta_diffusion import (
            forward_sample,
            klub_loss,
            network_timestep,
            predicted_x0,
            to_beta_range,
            training_times,
            whiten_logit,
        )
        from recap.models.denoiser import denoiser_outputs

        torch, config = self.torch, self.config
        generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence([config.seed, rank, step]).generate_state(1)[0])
        )
        dropped = torch.rand(len(texts), generator=generator) < config.caption_dropout
        texts = ["" if drop else text for text, drop in zip(texts, dropped.tolist(), strict=True)]
        pixels = self.codec.encode(images)
        self.pixel_sum, self.pixel_count = self.pixel_sum + pixels.sum(0).double(), self.pixel_count + len(pixels)
        x0 = to_beta_range(pixels)
        t = training_times(len(texts), generator)
        network_input = whiten_logit(forward_sample(x0, t, generator), t)
        features, mask = self.conditioner(texts)
        outputs = denoiser_outputs(model, network_input, network_timestep(t), features, mask)
        losses = [
            klub_loss(predicted_x0(output, network_input), x0, t, objective=config.beta_loss) for output in outputs
        ]
        return sum(losses) / len(losses)

    def _cbdm_loss(self, model, texts: list[str], noisy, timesteps, target, generator):
        """The DDPM loss plus CBDM's regulariser: one denoiser call on the batch twice, under each sample's own
        caption and under another caption of the batch (drawn after every draw of the plain loss)."""
        from recap.models.cbdm import cbdm_regulariser, other_captions
        from recap.models.denoiser import denoise

        torch = self.torch
        others = [texts[index] for index in other_captions(len(texts), generator).tolist()]
        valid = torch.tensor([bool(own) and bool(other) for own, other in zip(texts, others, strict=True)])
        features, mask = self.conditioner(texts + others)
        both = denoise(model, torch.cat([noisy, noisy]), torch.cat([timesteps, timesteps]), features, mask)
        prediction, other_prediction = both.chunk(2)
        steps = self.scheduler.config.num_train_timesteps
        regulariser = cbdm_regulariser(prediction, other_prediction, timesteps, steps, self.config.cbdm_tau, valid)
        return torch.nn.functional.mse_loss(prediction, target) + regulariser

    def after_step(self, model) -> None:
        self.ema.step(model.parameters())

    def extra_state(self) -> dict:
        return {"ema": self.ema.state_dict(), "pixel_sum": self.pixel_sum, "pixel_count": self.pixel_count}

    def load_extra_state(self, state: dict) -> None:
        self.ema.load_state_dict(state["ema"])
        self.pixel_sum, self.pixel_count = state.get("pixel_sum", self.pixel_sum), state.get("pixel_count", 0)

    def export(self, model) -> None:
        from recap.models.t2i import TextToImage
        from recap.models.text_conditioner import text_encoder_fingerprint

        config = self.config
        averaged = copy.deepcopy(model)
        self.ema.copy_to(averaged.parameters())
        info = {
            "text_encoder": config.text_encoder,
            "text_encoder_pretrained": config.text_encoder_pretrained,
            "text_encoder_sha256": text_encoder_fingerprint(config.text_encoder, config.text_encoder_pretrained),
            "max_text_chunks": config.max_text_chunks,
            "text_chunking": config.text_chunking,
            "image_size": config.image_size,
            "vae": str(Path(config.vae).resolve()) if config.vae else None,
            "weights": "ema",
            "process": config.process,
            "training": {key: value for key, value in asdict(config).items() if key not in ("threads", "ray_address")},
        }
        mean_image = (self.pixel_sum / max(self.pixel_count, 1)).float().numpy() if config.process == "beta" else None
        scheduler = dict(self.scheduler.config) if config.process == "ddpm" else {}
        TextToImage(averaged, self.conditioner, self.codec, scheduler, info, mean_image).save(self.out / "model")

    def summary_extra(self) -> dict:
        return {"text_cut": getattr(getattr(self, "conditioner", None), "cut", None)}

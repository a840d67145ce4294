"""Recap-DiT: a text-to-image diffusion transformer (diffusers' PixArt DiT) on a frozen open_clip text tower.

    model = load_t2i("runs/dit-p0/model")
    images = model.generate(["A small red heart is in the top left."], seed=0)     # (1, 32, 32, 3) uint8

The denoiser is `diffusers.PixArtTransformer2DModel` (a DiT with adaLN-single and cross-attention to text
tokens), trained under diffusers' DDPM schedule to predict the clean image (on the world: the noise or velocity
targets of DiT and later models made a small pixel-space model spend its steps on per-pixel noise; see
benchmarks/RESULTS.md), the velocity, or the noise. Sampling uses diffusers' DDIM or DPM-Solver with
classifier-free guidance (`recap.models.guidance`: plain, a negative prompt, Perp-Neg). The text condition is
the per-token output of an open_clip text tower (the shipped reference CLIP by default), frozen. A text longer
than the tower's context is split at sentence ends into chunks that fit, each encoded alone and the token
sequences joined (as long-prompt tools for Stable Diffusion do), so a four-sentence recaption is not cut after
its second object; a single sentence longer than the context is cut, and counted. Pixel space for the world
(32 px, 8-px patches); latent space with a local diffusers `AutoencoderKL` folder for real data.

A model folder holds `transformer/` and `scheduler/` (diffusers `save_pretrained` folders; the transformer's
weights are the EMA weights) and `recap_t2i.json`: the text encoder (a path, or `shipped:clip-tiny`) with the
sha256 of its weights, checked at load, the image size, the VAE folder if any, and how it was trained.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recap.errors import RecapError
from recap.models.denoiser import denoise
from recap.models.denoiser_presets import DIT_PRESETS, denoiser_presets, is_lego
from recap.models.text_conditioner import TextConditioner, text_encoder_fingerprint

T2I_CONFIG = "recap_t2i.json"
MEAN_IMAGE = "mean_image.npy"  # a beta-diffusion model's start: the training set's mean image (C, H, W)

SCHEDULERS = ("ddim", "dpm", "ddpm")
GUIDANCE_MODES = ("cfg", "negative", "perp-neg")
DEFAULT_GUIDANCE_SCALE = 4.0


def new_denoiser(preset: str, *, sample_size: int, channels: int, caption_channels: int, seed: int = 0):
    """A randomly initialised denoiser: a PixArtTransformer2DModel of a `DIT_PRESETS` size, or a LEGO brick stack
    (`recap.models.lego.LegoDenoiser`) of a `LEGO_PRESETS` one."""
    import torch

    from recap.models.denoiser import new_pixart

    if is_lego(preset):
        from recap.models.lego import new_lego

        return new_lego(
            preset, sample_size=sample_size, channels=channels, caption_channels=caption_channels, seed=seed
        )
    if preset not in DIT_PRESETS:
        raise RecapError(f"unknown denoiser preset {preset!r}; choose one of {', '.join(denoiser_presets())}")
    size = DIT_PRESETS[preset]
    if sample_size % size["patch_size"]:
        raise RecapError(
            f"{preset}: a {sample_size}-pixel input is not a whole number of {size['patch_size']}-patches"
        )
    torch.manual_seed(seed)
    return new_pixart(
        size, sample_size=sample_size, in_channels=channels, out_channels=channels, caption_channels=caption_channels
    )


PREDICTIONS = ("v_prediction", "epsilon", "sample")


def training_scheduler(latent: bool, prediction: str = "v_prediction"):
    """DDPM with 1,000 steps; the cosine schedule for pixels (the linear one leaves small images nearly clean
    at mid steps), the scaled linear one of latent-diffusion models for latents. `prediction` is what the
    denoiser outputs: "v_prediction" (Salimans and Ho's velocity, well scaled at every noise level) or "epsilon"
    (the noise, as DiT and PixArt; its image estimate is poor at the noisiest steps until trained long)."""
    from diffusers import DDPMScheduler

    if prediction not in PREDICTIONS:
        raise RecapError(f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
    if latent:
        return DDPMScheduler(
            num_train_timesteps=1000, beta_schedule="scaled_linear", clip_sample=False, prediction_type=prediction
        )
    return DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=True, prediction_type=prediction
    )


def training_target(scheduler, clean, noise, timesteps):
    """What the denoiser learns to output for `scheduler`'s prediction type."""
    if scheduler.config.prediction_type == "v_prediction":
        return scheduler.get_velocity(clean, noise, timesteps)
    if scheduler.config.prediction_type == "sample":
        return clean
    return noise


def sampling_scheduler(name: str, training_config: dict):
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    classes = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler, "ddpm": DDPMScheduler}
    if name not in classes:
        raise RecapError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return classes[name].from_config(training_config)


@dataclass
class ImageCodec:
    """uint8 images <-> the denoiser's space: pixels scaled to [-1, 1], or a VAE's scaled latents."""

    image_size: int
    vae_folder: str | None = None

    def __post_init__(self) -> None:
        self.vae = None
        if self.vae_folder:
            from diffusers import AutoencoderKL

            self.vae = AutoencoderKL.from_pretrained(self.vae_folder).eval().requires_grad_(False)

    @property
    def channels(self) -> int:
        return self.vae.config.latent_channels if self.vae else 3

    @property
    def sample_size(self) -> int:
        if self.vae is None:
            return self.image_size
        return self.image_size // 2 ** (len(self.vae.config.block_out_channels) - 1)

    def encode(self, images: np.ndarray, generator=None):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if self.vae is None:
            return x
        with torch.no_grad():
            latents = self.vae.encode(x).latent_dist.sample(generator)
        return latents * self.vae.config.scaling_factor

    def decode(self, x) -> np.ndarray:
        import torch

        if self.vae is not None:
            with torch.no_grad():
                x = self.vae.decode(x / self.vae.config.scaling_factor).sample
        pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return pixels.permute(0, 2, 3, 1).numpy()


def one_step_clean(transformer, noise, features, mask, start: int, abar_start: float, prediction: str):
    """A one-step generator's image (in the denoiser's space): the network applied once, at the start step, to
    pure noise, read as its clean-image estimate (SiD's generator; `recap.models.distillation`)."""
    import torch

    from recap.models.distillation import clean_estimate, generator_start

    x = generator_start(noise, abar_start)
    timesteps = torch.full((len(noise),), start, dtype=torch.long)
    abar = torch.full((len(noise),), abar_start)
    return clean_estimate(denoise(transformer, x, timesteps, features, mask), x, abar, prediction)


def seeded_noise(count: int, channels: int, side: int, seed: int):
    """(count, channels, side, side) normal noise, row i from seed `seed + i`."""
    import torch

    return torch.cat(
        [torch.randn(1, channels, side, side, generator=torch.Generator().manual_seed(seed + i)) for i in range(count)]
    )


class TextToImage:
    """A trained model: `generate` samples images for prompts; `save` writes the folder `load_t2i` reads. A
    one-step generator (`recap distill-t2i`'s; `one_step` in its recap_t2i.json) draws with one network call and
    no guidance."""

    @property
    def one_step(self) -> dict | None:
        """{"start_timestep", "sigma"} of a one-step generator, else None."""
        return self.info.get("one_step")

    @property
    def process(self) -> str:
        """The diffusion process it was trained under: "ddpm" (Gaussian) or "beta" (beta diffusion)."""
        return self.info.get("process", "ddpm")

    @property
    def num_bricks(self) -> int | None:
        """The number of bricks of a LEGO stack, else None."""
        return getattr(self.transformer, "num_bricks", None)

    def network_calls(self, steps: int, guidance: str = "cfg") -> int:
        """Denoiser calls per image: `steps` per guidance branch, or 1 for a one-step generator."""
        return 1 if self.one_step else steps * (3 if guidance == "perp-neg" else 2)

    def __init__(
        self,
        transformer,
        conditioner: TextConditioner,
        codec: ImageCodec,
        scheduler_config: dict,
        info,
        mean_image=None,
    ):
        """`mean_image` (C, H, W) in the denoiser's space: the training set's mean, where beta diffusion starts."""
        self.transformer, self.conditioner, self.codec = transformer.eval(), conditioner, codec
        self.scheduler_config, self.info = dict(scheduler_config), dict(info)
        self.mean_image = mean_image
        if self.process == "beta" and mean_image is None:
            raise RecapError("a beta-diffusion model needs the training set's mean image (mean_image.npy)")

    def generate(
        self,
        prompts: list[str],
        *,
        negative_prompts: list[str] | str | None = None,
        guidance: str = "cfg",
        scale: float | None = None,
        negative_scale: float | None = None,
        steps: int = 20,
        scheduler: str = "ddim",
        seed: int = 0,
        batch_size: int = 64,
        skip_bricks: float = 1.0,
        size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """uint8 images (N, S, S, 3), image i from the noise of seed `seed + i` whatever the batch it lands in, so
        the same seed gives the same images. `guidance`: "cfg" (the empty prompt as the unconditional branch),
        "negative" (the negative prompt there instead) or "perp-neg" (the negative's part perpendicular to the
        prompt's direction subtracted with `negative_scale`; default `scale - 1`, the weight the plain negative puts
        on the negative's direction, so the two modes compare at equal strength). `scale` None: the model's recorded
        `guidance_scale`, else 4. `progress(n)` is called per batch. A one-step generator ignores `scale`, `steps`
        and `scheduler` (one network call, no guidance) and refuses a negative prompt. A beta-diffusion model takes
        `steps` on its own grid (the authors use 200) and ignores `scheduler`.

        LEGO stacks only: `skip_bricks` is the fraction of the steps after which the top brick is skipped (1.0:
        never; 0.5: the second half of the steps runs bricks 0..K-2), on every guidance branch; `size` a canvas
        side other than the training one (a larger canvas tiles more windows)."""
        import torch

        from recap.models.t2i_sampling import beta_images, ddpm_images, guide, skip_from

        if guidance not in GUIDANCE_MODES:
            raise RecapError(f"unknown guidance {guidance!r}; choose one of {', '.join(GUIDANCE_MODES)}")
        if isinstance(negative_prompts, str) or negative_prompts is None:
            negative_prompts = [negative_prompts or ""] * len(prompts)
        if len(negative_prompts) != len(prompts):
            raise RecapError(f"{len(negative_prompts)} negative prompts for {len(prompts)} prompts")
        if guidance != "cfg" and not all(negative_prompts):
            raise RecapError(f"guidance {guidance!r} needs a negative prompt for every prompt")
        if scale is None:  # the scale recorded with the model (chosen on validation prompts), else 4
            scale = float(self.info.get("guidance_scale", DEFAULT_GUIDANCE_SCALE))
        # The plain negative, neg + s (cond - neg) = uncond + s (cond - uncond) - (s - 1) (neg - uncond), subtracts
        # the negative's direction with weight s - 1; Perp-Neg's default subtracts its perpendicular part with that.
        negative_scale = max(scale - 1.0, 0.0) if negative_scale is None else negative_scale
        if self.one_step and guidance != "cfg":
            raise RecapError("a one-step generator draws without guidance: it cannot take a negative prompt")
        side, channels = self._canvas(size, skip_bricks), self.codec.channels
        first_skipped = skip_from(steps, skip_bricks)
        out = []
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start : start + batch_size]
            if self.one_step:
                out.append(
                    self.codec.decode(self._one_step(batch, seeded_noise(len(batch), channels, side, seed + start)))
                )
                if progress is not None:
                    progress(len(batch))
                continue
            negatives = negative_prompts[start : start + batch_size]
            branches = {  # what the denoiser sees, in the order the guidance takes the predictions
                "cfg": [[""] * len(batch), batch],
                "negative": [negatives, batch],
                "perp-neg": [[""] * len(batch), batch, negatives],
            }[guidance]
            features, mask = self.conditioner([text for branch in branches for text in branch])

            def combine(predictions):
                return guide(predictions, guidance, scale, negative_scale)

            with torch.no_grad():
                if self.process == "beta":
                    start_image = self._tiled_mean(side)
                    shape = (len(batch), channels, side, side)
                    common = (features, mask, len(branches), combine, steps, first_skipped)
                    x = beta_images(self.transformer, shape, start_image, *common, seed + start)
                else:
                    noise = seeded_noise(len(batch), channels, side, seed + start)
                    sampler = sampling_scheduler(scheduler, self.scheduler_config)
                    common = (features, mask, len(branches), combine, steps, first_skipped)
                    x = ddpm_images(self.transformer, sampler, noise, *common)
            out.append(self.codec.decode(x))
            if progress is not None:
                progress(len(batch))
        pixels = side * (self.codec.image_size // self.codec.sample_size)
        return np.concatenate(out) if out else np.zeros((0, pixels, pixels, 3), np.uint8)

    def _canvas(self, size: int | None, skip_bricks: float) -> int:
        """The side the denoiser draws at: the training one, or `size` (pixel space, LEGO stacks only)."""
        if not self.num_bricks and skip_bricks < 1.0:
            raise RecapError(
                "skip_bricks needs a LEGO stack (train-t2i --model lego-pg or lego-pr): a DiT has no bricks"
            )
        if size is None or size == self.codec.image_size:
            return self.codec.sample_size
        if not self.num_bricks:
            raise RecapError(
                f"this model draws {self.codec.image_size}-px images only; a LEGO stack draws other sizes"
            )
        if self.codec.vae is not None:
            raise RecapError("another canvas size is for pixel-space LEGO stacks; this one draws VAE latents")
        return size

    def _tiled_mean(self, side: int):
        """The training set's mean image in the beta range, tiled over a larger canvas."""
        import torch

        from recap.models.beta_diffusion import to_beta_range

        mean = torch.as_tensor(self.mean_image, dtype=torch.float32)
        repeats = -(-side // mean.shape[-1])
        return to_beta_range(mean.repeat(1, repeats, repeats)[:, :side, :side])

    def _one_step(self, prompts: list[str], noise):
        import torch
        from diffusers import DDPMScheduler

        start = int(self.one_step["start_timestep"])
        abar = float(DDPMScheduler.from_config(self.scheduler_config).alphas_cumprod[start])
        features, mask = self.conditioner(prompts)
        prediction = self.scheduler_config.get("prediction_type", "epsilon")
        with torch.no_grad():
            return one_step_clean(self.transformer, noise, features, mask, start, abar, prediction)

    def save(self, folder: str | Path, *, half: bool = False) -> Path:
        """Write the model folder; `half` stores the weights in float16 (half the size; loaded as float32)."""
        import copy

        import torch
        from diffusers import DDPMScheduler

        folder = Path(folder)
        transformer = copy.deepcopy(self.transformer).to(torch.float16) if half else self.transformer
        transformer.save_pretrained(folder / "transformer")
        if self.process == "beta":
            np.save(folder / MEAN_IMAGE, np.asarray(self.mean_image, dtype=np.float32))
        else:
            DDPMScheduler.from_config(self.scheduler_config).save_pretrained(folder / "scheduler")
        (folder / T2I_CONFIG).write_text(json.dumps(self.info, indent=2) + "\n")
        return folder


def record_guidance_scale(folder: str | Path, scale: float, chosen_on: str) -> None:
    """Store the guidance scale a model draws with by default (`generate(scale=None)`) in its folder, with how it
    was chosen."""
    from recap.io_utils import write_json_atomic

    path = Path(folder) / T2I_CONFIG
    info = json.loads(path.read_text())
    write_json_atomic(path, {**info, "guidance_scale": float(scale), "guidance_scale_chosen_on": chosen_on})


def load_t2i(folder: str | Path, *, text_encoder: str | None = None) -> TextToImage:
    """A model folder written by `recap train-t2i` (or `TextToImage.save`). The text encoder recorded there is
    loaded and its weights checked against the recorded sha256 (`text_encoder` points elsewhere if it moved)."""
    import torch
    from diffusers import DDPMScheduler, PixArtTransformer2DModel

    folder = Path(folder)
    if not (folder / T2I_CONFIG).is_file():
        raise RecapError(
            f"{folder} is not a text-to-image model folder (no {T2I_CONFIG}); train one with recap train-t2i"
        )
    info = json.loads((folder / T2I_CONFIG).read_text())
    reference = text_encoder or info["text_encoder"]
    expected = info.get("text_encoder_sha256")
    found = text_encoder_fingerprint(reference, info.get("text_encoder_pretrained"))
    if expected and found and expected != found:
        raise RecapError(
            f"{folder} was trained on the text encoder {info['text_encoder']} with weights sha256 {expected[:12]}..., "
            f"but {reference} now holds {found[:12]}...: give the original with --text-encoder (or retrain)"
        )
    conditioner = TextConditioner(
        reference,
        pretrained=info.get("text_encoder_pretrained"),
        max_chunks=info.get("max_text_chunks", 4),
        chunking=info.get("text_chunking", "packed"),
    )
    model_class = PixArtTransformer2DModel
    if json.loads((folder / "transformer" / "config.json").read_text()).get("_class_name") == "LegoDenoiser":
        from recap.models.lego import LegoDenoiser

        model_class = LegoDenoiser
    transformer = model_class.from_pretrained(  # float32 even where the weights are stored in half
        folder / "transformer", low_cpu_mem_usage=False, torch_dtype=torch.float32
    )
    codec = ImageCodec(info["image_size"], info.get("vae"))
    if info.get("process", "ddpm") == "beta":
        return TextToImage(transformer, conditioner, codec, {}, info, np.load(folder / MEAN_IMAGE))
    scheduler = DDPMScheduler.from_pretrained(folder / "scheduler")
    return TextToImage(transformer, conditioner, codec, dict(scheduler.config), info)

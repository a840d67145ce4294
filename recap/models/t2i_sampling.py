"""The text-to-image sampling loops `TextToImage.generate` runs, one per diffusion process, on one batch.

- `ddpm_images`: a diffusers scheduler (DDIM, DPM-Solver, DDPM) from seeded Gaussian noise (`recap.models.t2i`'s
  Recap-DiT and LEGO stacks trained under the DDPM process).
- `beta_images`: beta diffusion's sampler (`recap.models.beta_diffusion.sample`), from the training set's mean image.

Both call the denoiser once per step on every guidance branch at once and combine the branches with `guide`. A
LEGO stack skips its top brick (`skip_from`: the first step index that skips) on every branch of those steps: the
authors' guided path drops the stage index, so their skipping never reaches guided sampling.
"""

from __future__ import annotations

import math

import torch

from recap.models.denoiser import denoise


def guide(predictions: tuple, guidance: str, scale: float, negative_scale: float):
    """The guided prediction from the branches' predictions, in the order `branches` lists them."""
    from recap.models.guidance import cfg, negative_prompt_cfg, perp_neg_cfg

    if guidance == "cfg":
        return cfg(predictions[0], predictions[1], scale)
    if guidance == "negative":
        return negative_prompt_cfg(predictions[0], predictions[1], scale)
    return perp_neg_cfg(predictions[0], predictions[1], predictions[2], scale, negative_scale)


def skip_from(steps: int, skip_bricks: float) -> int:
    """The first sampling step (0-based) at which a LEGO stack skips its top brick: after `skip_bricks` of the
    steps; `steps` (never) for 1.0."""
    if not 0.0 <= skip_bricks <= 1.0:
        raise ValueError(f"skip_bricks must be in [0, 1], got {skip_bricks}")
    return math.ceil(skip_bricks * steps)


def _brick_options(transformer, index: int, first_skipped: int) -> dict:
    from recap.models.lego import skip_brick_index

    if index < first_skipped or not getattr(transformer, "num_bricks", None):
        return {}
    return {"upto": skip_brick_index(transformer.num_bricks)}


def ddpm_images(
    transformer, sampler, noise, features, mask, branches: int, combine, steps: int, first_skipped: int
) -> torch.Tensor:
    """The clean sample (in the denoiser's space) of `steps` scheduler steps from `noise`; `combine(predictions)`
    guides the `branches` predictions of each step (the features hold the branches one after another)."""
    sampler.set_timesteps(steps)
    x = noise * sampler.init_noise_sigma
    for index, t in enumerate(sampler.timesteps):
        model_input = sampler.scale_model_input(torch.cat([x] * branches), t)
        timesteps = torch.full((len(model_input),), int(t), dtype=torch.long)
        options = _brick_options(transformer, index, first_skipped)
        predictions = denoise(transformer, model_input, timesteps, features, mask, **options).chunk(branches)
        x = sampler.step(combine(predictions), t, x).prev_sample
    return x


def beta_images(
    transformer,
    shape: tuple,
    start_image,
    features,
    mask,
    branches: int,
    combine,
    steps: int,
    first_skipped: int,
    seed: int,
) -> torch.Tensor:
    """Beta diffusion's `shape` (N, C, H, W) sample from `start_image` (C, H, W, beta range), in [-1, 1]: image i
    from seed `seed + i`. Guidance combines the branches' residual
    logits of x0; every branch reads the same input, so that is guidance in logit-x0 space (an extension: the
    authors' sampler has none)."""
    from recap.models.beta_diffusion import from_beta_range, network_timestep, predicted_x0, sample

    calls = 0

    def predict_x0(network_input, t):
        nonlocal calls
        timesteps = network_timestep(t).repeat(branches)
        options = _brick_options(transformer, calls, first_skipped)
        calls += 1
        outputs = denoise(transformer, torch.cat([network_input] * branches), timesteps, features, mask, **options)
        return predicted_x0(combine(outputs.chunk(branches)), network_input)

    return from_beta_range(sample(predict_x0, shape, start_image, steps=steps, seed=seed))

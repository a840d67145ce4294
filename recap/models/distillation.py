"""One-step distillation of a text-to-image diffusion model: Score identity Distillation (SiD), its long-and-short
guidance for text (SiD-LSG) and its adversarial extension with real images (SiDA), as pure functions on tensors.

The authors' code is the reference (mingyuanzhou/SiD, branch `sida`; mingyuanzhou/SiD-LSG
`training/sid_training_loop.py` and `training/sid_sd_util.py`; apple-aiml-research/ml-sid-dit
`training/transformer_with_encoder.py`). The trainer (`recap.training.distillation`) composes these; where this
code differs from the authors', the comment at the function says so and why:

- Our DiT runs under diffusers' DDPM schedule. SiD's EDM denoiser D(y + sigma n, sigma) is the DDPM network at the
  step t whose sigma(t) = sqrt((1 - abar_t) / abar_t) matches, fed sqrt(abar_t) (y + sigma n) = the DDPM x_t, and
  read as its clean-image estimate (`clean_estimate`), whatever the network predicts (the clean image, the noise
  or the velocity).
- Guidance is applied to the clean-image estimates. SiD-LSG guides the noise prediction and then converts it;
  at one x_t the conversion is affine in the noise, so the two are the same (a test checks it).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional

PREDICTIONS = ("sample", "epsilon", "v_prediction")
WEIGHT_FLOOR = 1e-5  # SiD clips the per-sample weight from below at this


def sigma_of(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """EDM's noise level of each DDPM step: sigma(t) = sqrt((1 - abar_t) / abar_t)."""
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt()


def start_timestep(alphas_cumprod: torch.Tensor, sigma: float = 2.5) -> int:
    """The DDPM step whose noise level is closest to `sigma` (in log space): where the generator starts. SiD
    starts its one-step generator at sigma_init = 2.5; for a schedule of 1,000 steps that is about step 440
    (linear betas), 625 (scaled linear, Stable Diffusion) or 755 (cosine)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    distance = (sigma_of(alphas_cumprod.double()).log() - math.log(sigma)).abs()
    return int(distance.argmin())


def noisy(clean: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """The DDPM forward process: sqrt(abar) x0 + sqrt(1 - abar) n, with `abar` per sample (N,)."""
    abar = _per_sample(abar, clean)
    return abar.sqrt() * clean + (1 - abar).sqrt() * noise


def clean_estimate(output: torch.Tensor, x_t: torch.Tensor, abar: torch.Tensor, prediction: str) -> torch.Tensor:
    """The network's estimate of the clean image from its output at x_t, for what it predicts (diffusers'
    `pred_original_sample`, without its clipping: a clipped estimate passes no gradient outside [-1, 1])."""
    abar = _per_sample(abar, x_t)
    if prediction == "sample":
        return output
    if prediction == "epsilon":
        return (x_t - (1 - abar).sqrt() * output) / abar.sqrt()
    if prediction == "v_prediction":
        return abar.sqrt() * x_t - (1 - abar).sqrt() * output
    raise ValueError(f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")


def guided(uncond: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance, uncond + scale (cond - uncond); `scale` 1 is the conditional prediction."""
    return uncond + scale * (cond - uncond)


def generator_start(noise: torch.Tensor, abar_start: float) -> torch.Tensor:
    """The generator's input: pure noise at the start step, sqrt(1 - abar) z (SiD-LSG's `add_noise(0, z, t0)`)."""
    return math.sqrt(1 - abar_start) * noise


def sid_weight(generated: torch.Tensor, y_real: torch.Tensor) -> torch.Tensor:
    """SiD's per-sample weight: mean over pixels of |x_g - y_real|, detached and floored at 1e-5; shape (N, 1, ...)."""
    with torch.no_grad():
        dims = tuple(range(1, generated.ndim))
        return (generated - y_real).abs().mean(dim=dims, keepdim=True).clamp_min(WEIGHT_FLOOR)


def sid_generator_loss(
    generated: torch.Tensor,
    y_real: torch.Tensor,
    y_fake: torch.Tensor,
    *,
    alpha: float = 1.0,
    y_fake_second: torch.Tensor | None = None,
) -> torch.Tensor:
    """SiD's generator loss, as its code has it: summed over pixels, averaged over the batch,

        L = (y_real - y_fake) ((y_real - x_g) - alpha (y_real - y_fake)) / w,   w = sid_weight(x_g, y_real),

    with only w detached: the gradient reaches the generator through x_g and through both frozen networks'
    inputs. alpha = 1 is SiD-LSG's (y_real - y_fake)(y_fake - x_g) / w. `y_fake_second` is the fake network's
    estimate under kappa3 where it differs from kappa2's (`y_fake`); SiD-LSG sets kappa2 = kappa3 and computes one."""
    second = y_fake if y_fake_second is None else y_fake_second
    weight = sid_weight(generated, y_real)
    loss = (y_real - y_fake) * ((y_real - generated) - alpha * (y_real - second)) / weight
    return loss.reshape(len(loss), -1).sum(dim=1).mean()


def fake_score_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The teacher's own training loss (recap's DiT: the mean squared error against its training target) on
    generated images. SiD-LSG sums the squared error over pixels; a mean only rescales it for Adam."""
    return functional.mse_loss(prediction, target)


def discriminator_logits(final_hidden: torch.Tensor) -> torch.Tensor:
    """SiDA's discriminator on a DiT: the fake-score network's last hidden states after its final norm and
    modulation, before the output projection, (N, tokens, width), averaged over tokens: (N, width) logits
    (ml-sid-dit's spatial pooling; SiDA on a UNet averages the bottleneck's channels instead)."""
    return final_hidden.mean(dim=1)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE(real, 1) + BCE(fake, 0), each averaged over its logits; trained with the fake-score loss."""
    ones, zeros = torch.ones_like(real_logits), torch.zeros_like(fake_logits)
    return functional.binary_cross_entropy_with_logits(
        real_logits, ones
    ) + functional.binary_cross_entropy_with_logits(fake_logits, zeros)


def generator_adversarial_loss(fake_logits: torch.Tensor, weight: torch.Tensor, pixels: int) -> torch.Tensor:
    """SiDA's non-saturating generator term: BCE(fake, 1) per sample (averaged over its logits), divided by the
    same per-sample weight w as the SiD term, times C*H*W (so it is on the scale of SiD's pixel sum), averaged
    over the batch (what the authors call batch-normalised per GPU)."""
    per_sample = functional.binary_cross_entropy_with_logits(
        fake_logits, torch.ones_like(fake_logits), reduction="none"
    ).reshape(len(fake_logits), -1)
    return (per_sample.mean(dim=1) / weight.reshape(len(weight)) * pixels).mean()


def sida_generator_objective(
    sid_loss: torch.Tensor, adversarial_loss: torch.Tensor | None, *, sid_scale: float, gan_scale: float
) -> torch.Tensor:
    """SiDA's generator objective 0.5 (sid_scale L_SiD) + 0.5 (gan_scale L_GAN); without the adversarial term
    (before its warm-up ends, or SiD alone) just sid_scale L_SiD's half, as the authors' loop adds the terms."""
    objective = 0.5 * sid_scale * sid_loss
    return objective if adversarial_loss is None else objective + 0.5 * gan_scale * adversarial_loss


def sida_phase(images_seen: int, generator_warmup: int, gan_warmup: int) -> tuple[bool, bool]:
    """(generator steps?, adversarial term?) after `images_seen` images: SiDA trains the fake score (and the
    discriminator) alone first, then the generator, and adds the adversarial term last."""
    return images_seen >= generator_warmup, images_seen >= gan_warmup


def ema_beta(batch: int, images_seen: int, halflife_images: float, rampup: float | None = 0.05) -> float:
    """The EMA decay per step of SiD's (EDM's) generator average: a half-life in images, ramped up as
    `rampup` x the images seen so far at the start."""
    halflife = halflife_images if rampup is None else min(halflife_images, images_seen * rampup)
    return 0.5 ** (batch / max(halflife, 1e-8))


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    values = torch.as_tensor(values, dtype=like.dtype, device=like.device)
    return values.reshape(-1, *([1] * (like.ndim - 1)))

"""CBDM's regulariser (Qin et al. 2023, "Class-Balancing Diffusion Models"; qym7/CBDM-pytorch, diffusion.py).

The authors add to the DDPM loss, on the same x_t and t,

    (t / T) tau [ ||h - sg(h')||^2 + 1/4 ||sg(h) - h'||^2 ],   h = eps(x_t, y),  h' = eps(x_t, y')

with y' another label drawn from the data's own (long-tailed) label prior, tau = 1. The first term pulls the
prediction under the sample's own condition toward the one under another; the second (a quarter as strong)
pulls the other toward it. Here the condition is a caption and y' another caption of the batch, drawn with
replacement (the text analogue of drawing from the data's prior: every caption of the batch is equally likely).

Where this differs from the authors' code, and why:
- Their classifier-free-guidance dropout is per batch and switches the term off for the whole batch; ours is per
  sample (the Recap-DiT's caption dropout), so the term is switched off per sample, where either caption is the
  dropped empty one, and the batch mean counts those samples as 0.
- The DiT predicts the clean image (or v), not eps. For every DDPM prediction type the map to eps at a given t is
  affine with one scalar on the prediction (x0: eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar); v: eps =
  sqrt(1 - abar) x_t + sqrt(abar) v), so an eps difference is that scalar times the prediction difference, and
  the DDPM loss the DiT trains on is the eps loss times the same squared scalar. Measuring both terms in the
  prediction's own space therefore keeps the regulariser's ratio to the denoising loss at every t exactly what it
  is in the authors' eps form; converting only the regulariser to eps units would instead weight it by SNR(t)
  against an x0 loss, up to 10^4 at small t.
- "mse" is the mean over a sample's elements, as the denoising loss here is; the authors' sum-then-mean differs by
  a constant factor that tau absorbs.
"""

from __future__ import annotations

import torch


def other_captions(count: int, generator: torch.Generator) -> torch.Tensor:
    """For each sample, the batch index of its y' (drawn uniformly, with replacement)."""
    return torch.randint(0, count, (count,), generator=generator)


def cbdm_regulariser(
    prediction: torch.Tensor,
    other_prediction: torch.Tensor,
    timesteps: torch.Tensor,
    num_train_timesteps: int,
    tau: float,
    valid: torch.Tensor,
) -> torch.Tensor:
    """The batch mean of (t/T) tau [mse(h, sg h') + 1/4 mse(sg h, h')] per sample, 0 where `valid` is False."""
    dims = tuple(range(1, prediction.dim()))
    pull = (prediction - other_prediction.detach()).pow(2).mean(dim=dims)
    push = (prediction.detach() - other_prediction).pow(2).mean(dim=dims)
    weight = timesteps.to(prediction.dtype) / num_train_timesteps * tau * valid.to(prediction.dtype)
    return (weight * (pull + 0.25 * push)).mean()

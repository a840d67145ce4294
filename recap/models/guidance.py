"""Classifier-free guidance for the text-to-image model: plain, with a negative prompt, and Perp-Neg.

Each function combines the denoiser's predictions for one sampling step (noise or velocity, any shape
`(N, ...)`, one row per image) into the prediction the scheduler steps with:

- `cfg`: `uncond + scale * (cond - uncond)` (Ho and Salimans, classifier-free guidance);
- `negative_prompt_cfg`: the same with the negative prompt's prediction as the unconditional branch, as most
  samplers implement negative prompts;
- `perp_neg_cfg`: Perp-Neg (Armandpour et al., 2023). The negative prompt's direction from the unconditional
  prediction is projected perpendicular to the positive direction, per image, before it is subtracted. What
  the negative shares with the positive prompt is kept, so a negative that overlaps the prompt cannot erase it.
"""

from __future__ import annotations

import torch


def cfg(uncond: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: `uncond + scale * (cond - uncond)`."""
    _check_shapes(uncond, cond)
    return uncond + scale * (cond - uncond)


def negative_prompt_cfg(negative: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Guidance away from a negative prompt by putting its prediction in the unconditional branch's place."""
    return cfg(negative, cond, scale)


def perpendicular_component(direction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The part of each row of `direction` perpendicular to the same row of `reference` (rows flattened).

    A row whose reference is zero has no direction to project out: it is returned whole.
    """
    _check_shapes(direction, reference)
    flat, ref = direction.reshape(len(direction), -1), reference.reshape(len(reference), -1)
    norm_sq = (ref * ref).sum(dim=1, keepdim=True)
    coefficient = torch.where(norm_sq > 0, (flat * ref).sum(dim=1, keepdim=True) / norm_sq.clamp_min(1e-30), 0.0)
    return (flat - coefficient * ref).reshape(direction.shape)


def perp_neg_cfg(
    uncond: torch.Tensor, cond: torch.Tensor, negative: torch.Tensor, scale: float, negative_scale: float
) -> torch.Tensor:
    """Perp-Neg: `uncond + scale * (cond - uncond) - negative_scale * perp(negative - uncond, cond - uncond)`.

    A negative parallel to the positive direction removes nothing; one orthogonal to it is removed in full.
    """
    _check_shapes(uncond, negative)
    positive = cond - uncond
    return cfg(uncond, cond, scale) - negative_scale * perpendicular_component(negative - uncond, positive)


def _check_shapes(first: torch.Tensor, second: torch.Tensor) -> None:
    if first.shape != second.shape:
        raise ValueError(
            f"guidance needs predictions of one shape, got {tuple(first.shape)} and {tuple(second.shape)}"
        )
    if first.ndim < 1:
        raise ValueError("guidance needs predictions with a batch dimension (N, ...)")

"""POUF's objective (Tanwisuth et al., 2023, "prompt-oriented unsupervised fine-tuning"): pure functions on tensors.

On a batch of N unlabeled target images and the text features of K class prompts, with s the (N, K) cosine
similarities and l = exp(logit_scale) * s the logits:

- `transport_loss`: the two-way transport of images to class prompts with cost 1 - s,
  mean_i sum_k (1 - s_ik) softmax_k(l_i.) + mean_k sum_i (1 - s_ik) softmax_i(l_.k): each image moves to the
  prompts its softmax over classes picks, and each prompt to the images its softmax over the batch picks;
- `information_maximisation`: mean_i H(p_i) - H(mean_i p_i), p_i = softmax_k(l_i.): confident predictions
  that use every class;
- `pouf_loss`: 1.0 x transport + 0.3 x information maximisation, the authors' weights (--trade-off, --lambda-im).

The formulas follow korawat-tanwisuth/POUF `pouf_lvm/examples/pouf/image_classification/pouf.py`
(`compute_transport_loss`, `compute_im_loss`, `train`). As there, the cost 1 - s is not detached: the
gradient flows through the cost as well as through the softmax weights. Where this code differs: the
entropies use 0 log 0 = 0 (`torch.special.xlogy`) instead of adding 1e-5 / 1e-6 inside the logarithm, so the
extremes are exact (the difference is below 1e-4 nats for the world's class counts).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

TRANSPORT_WEIGHT = 1.0  # the authors' --trade-off
INFORMATION_MAXIMISATION_WEIGHT = 0.3  # the authors' --lambda-im


class PoufLoss(NamedTuple):
    """The weighted total (what is minimised) and its two unweighted terms."""

    total: torch.Tensor
    transport: torch.Tensor
    information_maximisation: torch.Tensor


def cosine_similarities(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """(N, D) image and (K, D) text features -> the (N, K) cosines of each image with each class prompt."""
    if image_features.ndim != 2 or text_features.ndim != 2 or image_features.shape[1] != text_features.shape[1]:
        raise ValueError(
            f"expected (N, D) image and (K, D) text features, got {tuple(image_features.shape)} and "
            f"{tuple(text_features.shape)}"
        )
    return F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T


def transport_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """POUF's transport term, in [0, 4]: the expected cost 1 - cos of moving each image to the class prompts
    (softmax over classes) plus that of moving each prompt to the images (softmax over the batch).
    `logit_scale` is the log of the temperature's inverse, as open_clip stores it (logits = exp(it) * cos)."""
    similarity = cosine_similarities(image_features, text_features)
    logits = torch.as_tensor(logit_scale, dtype=similarity.dtype).exp() * similarity
    cost = 1.0 - similarity  # not detached, as the authors
    image_to_class = (cost * logits.softmax(dim=1)).sum(dim=1).mean()
    class_to_image = (cost * logits.softmax(dim=0)).sum(dim=0).mean()
    return image_to_class + class_to_image


def entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each distribution along the last axis, with 0 log 0 = 0."""
    return -torch.special.xlogy(probabilities, probabilities).sum(dim=-1)


def information_maximisation(probabilities: torch.Tensor) -> torch.Tensor:
    """mean_i H(p_i) - H(mean_i p_i) of (N, K) class probabilities, in [-log K, 0] (entropy is concave): -log K
    when every prediction is one-hot and the classes are used equally often, 0 when all predictions are the same."""
    if probabilities.ndim != 2:
        raise ValueError(f"expected (N, K) probabilities, got shape {tuple(probabilities.shape)}")
    return entropy(probabilities).mean() - entropy(probabilities.mean(dim=0))


def pouf_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor | float,
    *,
    transport_weight: float = TRANSPORT_WEIGHT,
    information_maximisation_weight: float = INFORMATION_MAXIMISATION_WEIGHT,
) -> PoufLoss:
    """POUF's loss on unlabeled images: `transport_weight` x `transport_loss` + `information_maximisation_weight`
    x `information_maximisation` of the softmax over classes of exp(logit_scale) x cos."""
    transport = transport_loss(image_features, text_features, logit_scale)
    similarity = cosine_similarities(image_features, text_features)
    logits = torch.as_tensor(logit_scale, dtype=similarity.dtype).exp() * similarity
    information = information_maximisation(logits.softmax(dim=1))
    return PoufLoss(
        transport_weight * transport + information_maximisation_weight * information, transport, information
    )

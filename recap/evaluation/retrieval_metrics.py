"""Retrieval and zero-shot classification metrics on similarity matrices (numpy, no model).

Conventions follow clip_benchmark and DataComp: `scores` is texts x images; text->image Recall@K is the share
of texts whose image is in the top K images; image->text Recall@K is the share of images with at least one of
their captions in the top K texts; `mean_recall@1` (DataComp's retrieval score) averages the two R@1.

Ties count against the query: a positive ranks after every negative that scores the same or higher. A model
that gives every pair the same score therefore gets the recall of the worst order, not a perfect one (torch's
`topk`, which clip_benchmark uses, breaks ties by position, which depends on how the data were ordered).
Without ties the numbers equal clip_benchmark's (tested on the same matrices).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10)


def _check_scores(scores: np.ndarray, text_to_image: np.ndarray) -> None:
    if scores.ndim != 2:
        raise ValueError(f"scores must be a (texts, images) matrix, got shape {scores.shape}")
    if len(text_to_image) != scores.shape[0]:
        raise ValueError(f"{scores.shape[0]} texts in scores but {len(text_to_image)} entries in text_to_image")
    if len(text_to_image) and (text_to_image.min() < 0 or text_to_image.max() >= scores.shape[1]):
        raise ValueError(f"text_to_image holds image indices outside 0..{scores.shape[1] - 1}")
    captioned = np.bincount(text_to_image, minlength=scores.shape[1])
    if (captioned == 0).any():
        raise ValueError(f"image(s) {np.flatnonzero(captioned == 0)[:5].tolist()} have no caption")


def text_to_image_ranks(scores: np.ndarray, text_to_image: Sequence[int]) -> np.ndarray:
    """For each text, how many wrong images score at least as high as its own image (0: retrieved first)."""
    scores = np.asarray(scores, dtype=np.float64)
    index = np.asarray(text_to_image, dtype=np.int64)
    _check_scores(scores, index)
    own = scores[np.arange(len(index)), index]
    return (scores >= own[:, None]).sum(axis=1) - 1


def image_to_text_ranks(scores: np.ndarray, text_to_image: Sequence[int]) -> np.ndarray:
    """For each image, how many texts of other images score at least as high as its best own caption."""
    scores = np.asarray(scores, dtype=np.float64)
    index = np.asarray(text_to_image, dtype=np.int64)
    _check_scores(scores, index)
    positive = index[:, None] == np.arange(scores.shape[1])[None, :]  # texts x images
    best_own = np.where(positive, scores, -np.inf).max(axis=0)
    return ((scores >= best_own[None, :]) & ~positive).sum(axis=0)


def retrieval_metrics(scores: np.ndarray, text_to_image: Sequence[int], ks: Sequence[int] = DEFAULT_KS) -> dict:
    """`image_to_text_R@K`, `text_to_image_R@K` for each K, and `mean_recall@1`; `scores` is texts x images and
    `text_to_image[t]` the index of text t's image (several texts may share an image, every image needs one)."""
    to_image = text_to_image_ranks(scores, text_to_image)
    to_text = image_to_text_ranks(scores, text_to_image)
    metrics = {}
    for k in ks:
        metrics[f"image_to_text_R@{k}"] = float((to_text < k).mean())
        metrics[f"text_to_image_R@{k}"] = float((to_image < k).mean())
    metrics["mean_recall@1"] = float(((to_text < 1).mean() + (to_image < 1).mean()) / 2)
    return metrics


def class_text_embeddings(text_features: np.ndarray, classes: int) -> np.ndarray:
    """(classes * templates, dim) text features, class-major -> (classes, dim): each class's template
    embeddings normalised, averaged, and normalised again (CLIP's prompt ensembling)."""
    features = np.asarray(text_features, dtype=np.float64)
    if features.shape[0] % classes:
        raise ValueError(f"{features.shape[0]} text features do not split into {classes} classes")
    features = features / np.linalg.norm(features, axis=1, keepdims=True)
    means = features.reshape(classes, -1, features.shape[1]).mean(axis=1)
    return means / np.linalg.norm(means, axis=1, keepdims=True)


def zero_shot_metrics(logits: np.ndarray, labels: Sequence[int]) -> dict:
    """`top1` and `mean_per_class_recall` from (samples, classes) scores. A sample counts as right only when its
    class scores strictly higher than every other class (ties count against it, as in retrieval)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or logits.shape[0] != len(labels):
        raise ValueError(f"logits must be (samples, classes) with one label per sample, got {logits.shape}")
    own = logits[np.arange(len(labels)), labels]
    others = np.where(np.arange(logits.shape[1])[None, :] == labels[:, None], -np.inf, logits).max(axis=1)
    right = own > others
    present = np.unique(labels)
    per_class = [right[labels == label].mean() for label in present]
    return {"top1": float(right.mean()), "mean_per_class_recall": float(np.mean(per_class))}

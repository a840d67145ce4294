"""Frechet distance between two sets of embeddings, in closed form (the FID formula on any feature space).

    d^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

with mu and S each set's mean and covariance. FID is this on Inception-v3 pool features; the text-to-image
evaluation uses it on the reference CLIP's image embeddings (so the number is not comparable with published
FIDs, only between models scored the same way).
"""

from __future__ import annotations

import warnings

import numpy as np


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of `features` (N, D); N must be at least 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need features of shape (N, D) with N >= 2, got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])


def frechet_distance(mean_1: np.ndarray, cov_1: np.ndarray, mean_2: np.ndarray, cov_2: np.ndarray) -> float:
    """The squared Frechet distance between N(mean_1, cov_1) and N(mean_2, cov_2)."""
    from scipy import linalg

    mean_1, mean_2 = np.atleast_1d(mean_1).astype(np.float64), np.atleast_1d(mean_2).astype(np.float64)
    cov_1, cov_2 = np.atleast_2d(cov_1).astype(np.float64), np.atleast_2d(cov_2).astype(np.float64)
    if mean_1.shape != mean_2.shape or cov_1.shape != cov_2.shape or cov_1.shape != (len(mean_1),) * 2:
        raise ValueError(
            f"statistics do not match: means {mean_1.shape} / {mean_2.shape}, "
            f"covariances {cov_1.shape} / {cov_2.shape}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            root = linalg.sqrtm(cov_1 @ cov_2)
        except linalg.LinAlgWarning:
            root = None
    if root is None or not np.isfinite(root).all():  # a singular product: regularise as pytorch-fid does
        offset = np.eye(len(cov_1)) * 1e-6
        root = linalg.sqrtm((cov_1 + offset) @ (cov_2 + offset))
    root = root.real  # rounding leaves tiny imaginary parts
    difference = mean_1 - mean_2
    return float(difference @ difference + np.trace(cov_1) + np.trace(cov_2) - 2.0 * np.trace(root))


def frechet_distance_of(features_1: np.ndarray, features_2: np.ndarray) -> float:
    """The squared Frechet distance between two sets of embeddings (N1, D) and (N2, D)."""
    return frechet_distance(*gaussian_statistics(features_1), *gaussian_statistics(features_2))

"""The closed-form Frechet distance against Gaussians whose distance is known."""

import numpy as np
import pytest

from recap.evaluation.frechet import frechet_distance, frechet_distance_of, gaussian_statistics


def test_known_distances_from_statistics():
    mean = np.zeros(3)
    assert frechet_distance(mean, np.eye(3), mean, np.eye(3)) == pytest.approx(0.0, abs=1e-9)
    # equal covariances: only the means count, |m|^2
    assert frechet_distance(mean, np.eye(3), np.array([3.0, 4.0, 0.0]), np.eye(3)) == pytest.approx(25.0)
    # commuting (diagonal) covariances: sum of (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum())  # 1 + 1 + 0
    assert frechet_distance(mean, np.diag(a), mean, np.diag(b)) == pytest.approx(expected)


def test_a_rotated_covariance_against_scipy_free_formula():
    # 2-D: S1 = diag(1, 4), S2 = R S1 R^T with R a 90-degree turn = diag(4, 1): the same as the diagonal case
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])
    cov = np.diag([1.0, 4.0])
    assert frechet_distance(np.zeros(2), cov, np.zeros(2), rotation @ cov @ rotation.T) == pytest.approx(2.0)


def test_samples_converge_to_the_distance_of_their_gaussians():
    rng = np.random.default_rng(0)
    first = rng.normal(0.0, 1.0, size=(20_000, 4))
    second = rng.normal(1.0, 2.0, size=(20_000, 4))  # |mu|^2 = 4, per dimension (1 - 2)^2 = 1 -> 4 + 4 = 8
    assert frechet_distance_of(first, second) == pytest.approx(8.0, rel=0.03)
    assert frechet_distance_of(first, first) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance_of(first[:10_000], first[10_000:]) < 0.01


def test_a_singular_covariance_still_gives_a_finite_distance():
    rng = np.random.default_rng(1)
    flat = np.zeros((50, 3))
    flat[:, 0] = rng.normal(size=50)  # rank-1 covariance
    assert np.isfinite(frechet_distance_of(flat, rng.normal(size=(50, 3))))


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="N >= 2"):
        gaussian_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))

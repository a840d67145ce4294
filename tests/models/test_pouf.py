"""POUF's objective on hand-made values: the transport term against its double sum, its symmetry and bounds, the
information-maximisation term's extremes, and the weights of the total."""

import math

import pytest
import torch
import torch.nn.functional as F

from recap.models.pouf import (
    cosine_similarities,
    entropy,
    information_maximisation,
    pouf_loss,
    transport_loss,
)


def _features(seed: int, images: int = 6, classes: int = 4, dim: int = 8):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(images, dim, generator=generator), torch.randn(classes, dim, generator=generator)


def _double_loop(image_features, text_features, logit_scale: float) -> float:
    """The paper's two sums written out, one pair at a time, in Python floats."""
    images, classes = len(image_features), len(text_features)
    cos = [
        [F.cosine_similarity(image_features[i], text_features[k], dim=0).item() for k in range(classes)]
        for i in range(images)
    ]
    scale = math.exp(logit_scale)
    to_classes = 0.0
    for i in range(images):
        norm = sum(math.exp(scale * cos[i][k]) for k in range(classes))
        to_classes += sum((1 - cos[i][k]) * math.exp(scale * cos[i][k]) / norm for k in range(classes))
    to_images = 0.0
    for k in range(classes):
        norm = sum(math.exp(scale * cos[i][k]) for i in range(images))
        to_images += sum((1 - cos[i][k]) * math.exp(scale * cos[i][k]) / norm for i in range(images))
    return to_classes / images + to_images / classes


@pytest.mark.parametrize("seed, logit_scale", [(0, 0.0), (1, math.log(10)), (2, math.log(100))])
def test_transport_matches_the_double_sum(seed, logit_scale):
    image_features, text_features = (features.double() for features in _features(seed))
    value = transport_loss(image_features, text_features, logit_scale)
    assert value.item() == pytest.approx(_double_loop(image_features, text_features, logit_scale), rel=1e-9)


def test_transport_is_symmetric_in_images_and_classes():
    """Swapping the roles transposes the cost matrix: the two terms trade places and the sum stays."""
    image_features, text_features = _features(3, images=7, classes=3)
    forward = transport_loss(image_features, text_features, torch.tensor(2.0))
    swapped = transport_loss(text_features, image_features, torch.tensor(2.0))
    torch.testing.assert_close(forward, swapped)


def test_transport_lies_between_0_and_4_and_reaches_both():
    for seed in range(20):
        image_features, text_features = _features(seed, images=5, classes=3)
        assert 0.0 <= transport_loss(image_features, text_features, 4.6).item() <= 4.0
    direction = torch.tensor([[1.0, 2.0, -1.0]])
    same = transport_loss(direction.repeat(4, 1), direction.repeat(3, 1), 1.0)
    opposite = transport_loss(direction.repeat(4, 1), -direction.repeat(3, 1), 1.0)
    assert same.item() == pytest.approx(0.0, abs=1e-6) and opposite.item() == pytest.approx(4.0, abs=1e-6)


def test_the_cost_is_not_detached():
    """As the authors: the gradient flows through 1 - cos as well as through the softmax weights."""
    image_features, text_features = _features(4)
    image_features.requires_grad_(True)
    (gradient,) = torch.autograd.grad(transport_loss(image_features, text_features, 1.0), image_features)
    similarity = cosine_similarities(image_features, text_features)
    logits = math.exp(1.0) * similarity
    cost = (1 - similarity).detach()
    detached = (cost * logits.softmax(1)).sum(1).mean() + (cost * logits.softmax(0)).sum(0).mean()
    (other,) = torch.autograd.grad(detached, image_features)
    assert not torch.allclose(gradient, other)


def test_information_maximisation_extremes():
    classes = 5
    uniform = torch.full((8, classes), 1 / classes)
    assert information_maximisation(uniform).item() == pytest.approx(0.0, abs=1e-6)  # log K - log K
    balanced_one_hot = torch.eye(classes).repeat(2, 1)
    assert information_maximisation(balanced_one_hot).item() == pytest.approx(-math.log(classes))  # 0 - log K
    collapsed = torch.zeros(8, classes)
    collapsed[:, 2] = 1.0
    assert information_maximisation(collapsed).item() == pytest.approx(0.0, abs=1e-7)  # 0 - 0: one class for all
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        probabilities = torch.randn(6, classes, generator=generator).softmax(dim=1)
        value = information_maximisation(probabilities).item()
        assert -math.log(classes) - 1e-6 <= value <= math.log(classes)
    assert entropy(torch.tensor([0.5, 0.5, 0.0])).item() == pytest.approx(math.log(2))  # 0 log 0 = 0


def test_pouf_loss_is_transport_plus_0_3_information_maximisation():
    image_features, text_features = _features(5)
    loss = pouf_loss(image_features, text_features, torch.tensor(3.0))
    probabilities = (math.exp(3.0) * cosine_similarities(image_features, text_features)).softmax(dim=1)
    torch.testing.assert_close(loss.transport, transport_loss(image_features, text_features, 3.0))
    torch.testing.assert_close(loss.information_maximisation, information_maximisation(probabilities))
    torch.testing.assert_close(loss.total, loss.transport + 0.3 * loss.information_maximisation)
    weighted = pouf_loss(image_features, text_features, 3.0, transport_weight=0.0, information_maximisation_weight=1.0)
    torch.testing.assert_close(weighted.total, loss.information_maximisation)
    with pytest.raises(ValueError, match="features"):
        pouf_loss(image_features, text_features[:, :3], 3.0)

"""CBDM's regulariser: the weight (t/T) tau, the two stop-gradients, the switch-off for dropped captions, and the
Recap-DiT trainer's use of it (tau = 0 is the plain DDPM loss; the doubled batch keeps each sample's prediction)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recap.models.cbdm import cbdm_regulariser, other_captions


def _pair(seed=0, batch=4):
    generator = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, 3, 4, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    other = torch.randn(batch, 3, 4, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    return h, other


def test_gradients_route_as_the_two_stop_gradients_say():
    h, other = _pair()
    timesteps, valid = torch.tensor([0, 250, 500, 999]), torch.ones(4, dtype=torch.bool)
    cbdm_regulariser(h, other, timesteps, 1000, 2.0, valid).backward()
    weight = (timesteps.double() / 1000 * 2.0).view(-1, 1, 1, 1) / 4  # batch mean over 4 samples
    elements = 3 * 4 * 4
    difference = (h - other).detach()
    # h gets only the pull term, 2 (h - h') / N; h' only the quarter-strength push term, 1/4 * 2 (h' - h) / N.
    assert torch.allclose(h.grad, weight * 2 * difference / elements)
    assert torch.allclose(other.grad, weight * 0.25 * 2 * -difference / elements)


def test_without_stop_gradients_the_gradients_differ():
    h, other = _pair(1)
    timesteps, valid = torch.full((4,), 600), torch.ones(4, dtype=torch.bool)
    cbdm_regulariser(h, other, timesteps, 1000, 1.0, valid).backward()
    routed = h.grad.clone()
    h.grad = None
    plain = (0.6 * (((h - other) ** 2).mean(dim=(1, 2, 3)) * 1.25)).mean()
    plain.backward()
    assert not torch.allclose(routed, h.grad)


def test_tau_zero_time_zero_and_dropped_captions_give_zero():
    h, other = _pair(2)
    ones = torch.ones(4, dtype=torch.bool)
    assert cbdm_regulariser(h, other, torch.full((4,), 700), 1000, 0.0, ones).item() == 0.0
    assert cbdm_regulariser(h, other, torch.zeros(4, dtype=torch.long), 1000, 1.0, ones).item() == 0.0
    assert cbdm_regulariser(h, other, torch.full((4,), 700), 1000, 1.0, torch.zeros(4, dtype=torch.bool)).item() == 0
    one_valid = torch.tensor([True, False, False, False])
    value = cbdm_regulariser(h, other, torch.full((4,), 700), 1000, 1.0, one_valid).item()
    expected = 0.7 * 1.25 * ((h[0] - other[0]) ** 2).mean().item() / 4
    assert value == pytest.approx(expected)


def test_other_captions_are_drawn_from_the_generator():
    first = other_captions(8, torch.Generator().manual_seed(5))
    assert first.tolist() == other_captions(8, torch.Generator().manual_seed(5)).tolist()
    assert first.min() >= 0 and first.max() < 8


def test_trainer_loss_adds_the_regulariser_to_the_plain_loss(small_world, tmp_path):
    from recap.training.t2i_training import T2ITrainer, T2ITrainingConfig

    def trainer(tau):
        config = T2ITrainingConfig(
            train=str(small_world / "sft"), out=str(tmp_path), image_size=16, threads=1, cbdm_tau=tau
        )
        made = T2ITrainer(config, progress=False)
        return made, made.build_model()

    plain, model = trainer(0.0)
    balanced, _ = trainer(1.0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    texts = [f"A small {colour} heart is in the top left." for colour in ("red", "blue", "green", "pink", "gray", "")]
    with torch.no_grad():
        base = plain.loss(model, images, texts, step=3, rank=0).item()
        again = plain.loss(model, images, texts, step=3, rank=0).item()
        regularised = balanced.loss(model, images, texts, step=3, rank=0).item()
        # tau = 0 through the CBDM path: each sample's prediction under its own caption, in the doubled batch, is
        # the plain one (to rounding), so the loss is the baseline's.
        balanced.config.cbdm_tau = 0.0
        doubled = balanced._cbdm_loss(model, *balanced.noised_batch(images, texts, 3, 0)).item()
    assert base == again
    assert regularised > base
    assert doubled == pytest.approx(base, rel=1e-5)

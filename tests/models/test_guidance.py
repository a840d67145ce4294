"""Guidance arithmetic on hand-made vectors: plain CFG, negative prompts, and Perp-Neg's projection."""

import pytest
import torch

from recap.models.guidance import cfg, negative_prompt_cfg, perp_neg_cfg, perpendicular_component


def test_cfg_and_the_plain_negative_prompt():
    uncond, cond = torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 1.0]])
    assert torch.allclose(cfg(uncond, cond, 1.0), cond)  # scale 1 is the conditional prediction
    assert torch.allclose(cfg(uncond, cond, 3.0), torch.tensor([[4.0, 3.0]]))
    negative = torch.tensor([[0.0, 2.0]])
    assert torch.allclose(negative_prompt_cfg(negative, cond, 2.0), torch.tensor([[4.0, 0.0]]))


def test_perp_neg_removes_nothing_of_a_negative_parallel_to_the_positive():
    uncond = torch.tensor([[1.0, 1.0, 0.0]])
    cond = uncond + torch.tensor([[2.0, 0.0, 0.0]])
    negative = uncond + torch.tensor([[-5.0, 0.0, 0.0]])  # parallel (here: opposite) to the positive direction
    assert torch.allclose(perp_neg_cfg(uncond, cond, negative, 4.0, 3.0), cfg(uncond, cond, 4.0))


def test_perp_neg_removes_an_orthogonal_negative_in_full():
    uncond = torch.zeros(1, 3)
    cond = torch.tensor([[1.0, 0.0, 0.0]])
    negative = torch.tensor([[0.0, 2.0, 0.0]])
    expected = cfg(uncond, cond, 5.0) - 1.5 * negative
    assert torch.allclose(perp_neg_cfg(uncond, cond, negative, 5.0, 1.5), expected)
    # a mixed negative: only its orthogonal part goes
    mixed = torch.tensor([[3.0, 2.0, 0.0]])
    assert torch.allclose(perp_neg_cfg(uncond, cond, mixed, 5.0, 1.5), expected)


def test_the_projection_is_per_image_over_all_of_its_values():
    reference = torch.zeros(2, 1, 2, 2)
    reference[0, 0, 0, 0] = 1.0  # image 0's positive direction: one pixel
    reference[1, 0, 1, 1] = 2.0  # image 1's: another
    direction = torch.ones(2, 1, 2, 2)
    out = perpendicular_component(direction, reference)
    assert out.shape == direction.shape
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 1, 1] == 1  # each image loses only its own positive direction
    assert out[1, 0, 1, 1] == 0 and out[1, 0, 0, 0] == 1
    for row, ref in zip(out, reference, strict=True):
        assert torch.dot(row.flatten(), ref.flatten()).abs() < 1e-6
    # a zero positive direction leaves the negative whole
    assert torch.equal(perpendicular_component(direction, torch.zeros_like(direction)), direction)


def test_mismatched_predictions_are_errors():
    with pytest.raises(ValueError, match="one shape"):
        perp_neg_cfg(torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 3), 1.0, 1.0)

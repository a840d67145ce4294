"""LEGO bricks: windows that fold back exactly, bricks that see only their window, a brick that computes what
diffusers' PixArt does per window, skipping that returns the lower brick's output for fewer FLOPs, the diffusers
folder round trip, a bigger canvas, and the errors."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from recap.errors import RecapError
from recap.models.denoiser import denoise
from recap.models.denoiser_presets import LEGO_PRESETS, is_lego
from recap.models.lego import (
    LegoDenoiser,
    brick_forward,
    canvas_coordinates,
    deep_supervision_loss,
    fold_windows,
    new_lego,
    skip_brick_index,
    unfold_windows,
)

TEXT_WIDTH = 16
TINY = {"num_layers": 1, "num_attention_heads": 2, "attention_head_dim": 8}
TINY_BRICKS = [  # progressive growth at 16 px: 4-px windows first, the whole image on top
    {"window": 4, "patch_size": 2, **TINY},
    {"window": 8, "patch_size": 4, **TINY},
    {"window": 16, "patch_size": 4, **TINY},
]


def _tiny(seed=0) -> LegoDenoiser:
    torch.manual_seed(seed)
    return LegoDenoiser(bricks=TINY_BRICKS, in_channels=3, caption_channels=TEXT_WIDTH, sample_size=16).eval()


def _inputs(n=2, side=16, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, side, side, generator=generator)
    text = torch.randn(n, 5, TEXT_WIDTH, generator=generator)
    mask = torch.ones(n, 5, dtype=torch.bool)
    mask[0, 3:] = False
    timesteps = torch.tensor([7, 900] * n)[:n]
    return x, text, mask, timesteps


@pytest.mark.parametrize("window", [1, 2, 4, 8])
def test_unfold_then_fold_is_exact(window):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, 16)
    windows = unfold_windows(x, window)
    assert windows.shape == (3 * (8 // window) * (16 // window), 5, window, window)
    assert torch.equal(fold_windows(windows, window, 3, 8, 16), x)


def test_windows_are_image_by_image_in_row_major_order():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    windows = unfold_windows(x, 2)
    assert torch.equal(windows[1, 0], x[0, 0, 0:2, 2:4])  # image 0, top right
    assert torch.equal(windows[2, 0], x[0, 0, 2:4, 0:2])  # image 0, bottom left
    assert torch.equal(windows[4, 0], x[1, 0, 0:2, 0:2])  # image 1, top left


def test_coordinates_span_the_canvas_horizontal_first():
    coordinates = canvas_coordinates(2, 4, 8)
    assert coordinates.shape == (2, 2, 4, 8)
    assert torch.equal(coordinates[0, 0, 0], torch.linspace(-1, 1, 8))  # across a row
    assert torch.equal(coordinates[1, 1, :, 3], torch.linspace(-1, 1, 4))  # down a column


def test_a_perturbation_inside_one_window_changes_brick_zero_only_there():
    model = _tiny()
    x, text, mask, timesteps = _inputs()
    bumped = x.clone()
    bumped[1, :, 5, 6] += 1.0  # inside the 4-px window of rows 4-7, columns 4-7 of image 1
    with torch.no_grad():
        before = model(x, text, mask, timesteps, upto=0).sample
        after = model(bumped, text, mask, timesteps, upto=0).sample
    changed = (after - before).abs()
    inside = torch.zeros_like(changed, dtype=torch.bool)
    inside[1, :, 4:8, 4:8] = True
    assert changed[inside].max() > 1e-4
    assert changed[~inside].max() == 0


def test_a_brick_computes_pixarts_forward_on_every_window_with_the_condition_repeated():
    model = _tiny()
    x, text, mask, timesteps = _inputs()
    brick, window = model.brick_networks[1], 8
    inputs = torch.cat([x, x, canvas_coordinates(2, 16, 16)], dim=1)
    bias = ((1 - mask.float()) * -10000.0).unsqueeze(1)
    windows = unfold_windows(inputs, window)
    per_image = len(windows) // 2
    with torch.no_grad():
        ours = brick_forward(brick, inputs, window, text, bias, timesteps)
        pixart = brick(
            windows,
            encoder_hidden_states=text.repeat_interleave(per_image, 0),
            encoder_attention_mask=mask.repeat_interleave(per_image, 0),
            timestep=timesteps.repeat_interleave(per_image, 0),
            added_cond_kwargs={"resolution": None, "aspect_ratio": None},
        ).sample
    assert torch.allclose(ours, fold_windows(pixart, window, 2, 16, 16), atol=1e-5)


def test_every_brick_output_has_the_image_shape_and_the_default_is_the_top_one():
    model = _tiny()
    x, text, mask, timesteps = _inputs()
    with torch.no_grad():
        outputs = model(x, text, mask, timesteps, return_all=True)
        top = denoise(model, x, timesteps, text, mask)  # recap.models.t2i's helper, unchanged
    assert len(outputs) == model.num_bricks == 3
    assert all(output.shape == x.shape for output in outputs)
    assert torch.equal(top, outputs[-1])


def test_skipping_the_top_brick_returns_the_one_below_for_fewer_flops():
    model = _tiny()
    x, text, mask, timesteps = _inputs()
    skip = skip_brick_index(model.num_bricks)
    assert skip == 1
    with torch.no_grad():
        outputs = model(x, text, mask, timesteps, return_all=True)
        with FlopCounterMode(display=False) as skipped_counter:
            skipped = model(x, text, mask, timesteps, upto=skip).sample
        with FlopCounterMode(display=False) as full_counter:
            model(x, text, mask, timesteps)
    assert torch.equal(skipped, outputs[skip])
    assert 0 < skipped_counter.get_total_flops() < full_counter.get_total_flops()
    with pytest.raises(ValueError, match="upto=3"):
        model(x, text, mask, timesteps, upto=3)


def test_skip_index_and_preset_names():
    assert [skip_brick_index(k) for k in (1, 2, 3, 5)] == [0, 0, 1, 3]
    assert is_lego("lego-pg") and is_lego("lego-pr") and not is_lego("recap-dit-tiny-8")
    windows = [[brick["window"] for brick in LEGO_PRESETS[name]["bricks"]] for name in ("lego-pg", "lego-pr")]
    assert windows[0] == sorted(windows[0]) and windows[1] == windows[0][::-1]


def test_deep_supervision_is_the_mean_of_the_brick_mses():
    target = torch.zeros(1, 1, 2, 2)
    outputs = [torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 3.0)]
    assert deep_supervision_loss(outputs, target).item() == pytest.approx((1 + 9) / 2)
    assert deep_supervision_loss([target], target).item() == 0


def test_gradients_of_a_skipped_stack_do_not_reach_the_top_brick():
    model = _tiny().train()
    x, text, mask, timesteps = _inputs()
    outputs = model(x, text, mask, timesteps, upto=1, return_all=True)
    deep_supervision_loss(outputs, torch.zeros_like(x)).backward()
    assert all(p.grad is None for p in model.brick_networks[2].parameters())
    assert all(p.grad is not None for p in model.brick_networks[0].parameters() if p.requires_grad)


def test_save_pretrained_then_from_pretrained_gives_the_same_outputs(tmp_path):
    model = _tiny()
    x, text, mask, timesteps = _inputs()
    model.save_pretrained(tmp_path / "transformer")
    with torch.no_grad():
        expected = model(x, text, mask, timesteps, return_all=True)
        for kwargs in ({}, {"low_cpu_mem_usage": False, "torch_dtype": torch.float32}):  # the second as load_t2i
            loaded = LegoDenoiser.from_pretrained(tmp_path / "transformer", **kwargs).eval()
            assert loaded.config.bricks == TINY_BRICKS
            outputs = loaded(x, text, mask, timesteps, return_all=True)
            assert all(torch.equal(a, b) for a, b in zip(outputs, expected, strict=True))


@pytest.mark.parametrize("preset", sorted(LEGO_PRESETS))
def test_a_twice_bigger_canvas_tiles_more_windows(preset):
    model = new_lego(preset, sample_size=32, channels=3, caption_channels=TEXT_WIDTH).eval()
    x, text, mask, timesteps = _inputs(n=1, side=64)
    with torch.no_grad():
        out = model(x, text, mask, timesteps).sample
        scalar_time = model(x, text, mask, timesteps[0]).sample  # a scalar timestep is every sample's
    assert out.shape == (1, 3, 64, 64)
    assert torch.isfinite(out).all()
    assert torch.equal(out, scalar_time)


def test_errors_name_the_problem():
    with pytest.raises(RecapError, match="unknown LEGO preset 'lego-xl'"):
        new_lego("lego-xl", sample_size=32, channels=3, caption_channels=TEXT_WIDTH)
    with pytest.raises(RecapError, match="24-pixel sample"):
        new_lego("lego-pg", sample_size=24, channels=3, caption_channels=TEXT_WIDTH)
    with pytest.raises(RecapError, match="12x16 canvas is not a whole number of 8x8 windows"):
        unfold_windows(torch.zeros(1, 3, 12, 16), 8)
    model = _tiny()
    x, text, mask, timesteps = _inputs(side=24)
    with pytest.raises(RecapError, match="24x24 canvas is not a whole number of 16x16 windows"):
        model(x, text, mask, timesteps)
    with pytest.raises(ValueError, match="not the 4 8x8 windows"):
        fold_windows(torch.zeros(3, 1, 8, 8), 8, 1, 16, 16)

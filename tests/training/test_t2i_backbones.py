"""train-t2i's other backbone and process on a world split: a LEGO stack (deep supervision, skipping through the
guided sampler, a larger canvas) and beta diffusion (its model folder, seeded sampling), each through the same
trainer, model folder and `generate` as the Recap-DiT."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recap.cli import main
from recap.errors import RecapError
from recap.models.lego import LegoDenoiser, skip_brick_index
from recap.models.t2i import MEAN_IMAGE, load_t2i
from recap.training.t2i_training import T2ITrainer, T2ITrainingConfig

PROMPTS = ["A small red heart is in the top left.", "A large blue star is in the centre."]


def train(world, out, **changes):
    options = dict(
        train=str(world / "sft"),
        out=str(out),
        p_original=0.0,
        steps=6,
        warmup_steps=1,
        batch_size=4,
        image_size=16,
        threads=1,
        checkpoint_every=6,
    )
    return T2ITrainer(T2ITrainingConfig(**{**options, **changes}), progress=False).run()


@pytest.fixture(scope="module")
def lego(small_world, tmp_path_factory):
    out = tmp_path_factory.mktemp("lego") / "run"
    summary = train(small_world, out, model="lego-pg", image_size=32)
    return summary, load_t2i(out / "model")


def record_calls(model):
    """Wrap the model's denoiser to record (rows, upto) of every call."""
    calls, forward = [], model.transformer.forward

    def recording(*args, **kwargs):
        calls.append((len(args[0]), kwargs.get("upto")))
        return forward(*args, **kwargs)

    model.transformer.forward = recording
    return calls


def test_a_lego_stack_trains_with_deep_supervision_and_loads_as_bricks(lego):
    summary, model = lego
    assert np.isfinite(summary["first_loss"]) and np.isfinite(summary["final_loss"])
    assert isinstance(model.transformer, LegoDenoiser) and model.num_bricks == 3
    assert model.info["training"]["model"] == "lego-pg" and model.process == "ddpm"


def test_skipping_reaches_every_guided_call_after_the_fraction(lego):
    _, model = lego
    plain = model.generate(PROMPTS, steps=4, seed=3)
    calls = record_calls(model)
    try:
        skipped = model.generate(PROMPTS, steps=4, seed=3, skip_bricks=0.5)
    finally:
        del model.transformer.forward
    top_skipped = skip_brick_index(model.num_bricks)
    # cfg: both branches in one call of 2 x 2 rows; the last half of the steps runs bricks 0..K-2
    assert calls == [(4, None), (4, None), (4, top_skipped), (4, top_skipped)]
    assert skipped.shape == plain.shape and not np.array_equal(skipped, plain)
    calls = record_calls(model)
    try:
        model.generate(PROMPTS, steps=2, guidance="perp-neg", negative_prompts="green", skip_bricks=0.0)
    finally:
        del model.transformer.forward
    assert calls == [(6, top_skipped), (6, top_skipped)]  # three branches, every step skips at fraction 0


def test_a_lego_stack_draws_a_twice_larger_canvas(lego):
    _, model = lego
    images = model.generate(PROMPTS[:1], steps=2, size=64)
    assert images.shape == (1, 64, 64, 3) and images.dtype == np.uint8


def test_skipping_and_other_sizes_are_refused_for_a_dit(small_world, tmp_path):
    train(small_world, tmp_path / "dit", steps=2)
    model = load_t2i(tmp_path / "dit" / "model")
    with pytest.raises(RecapError, match="needs a LEGO stack"):
        model.generate(PROMPTS, steps=2, skip_bricks=0.5)
    with pytest.raises(RecapError, match="draws 16-px images only"):
        model.generate(PROMPTS, steps=2, size=32)
    sample = ["sample", "--model", str(tmp_path / "dit" / "model"), "--prompt", PROMPTS[0], "--out", str(tmp_path)]
    assert main([*sample, "--steps", "2", "--skip-bricks", "0.5"]) == 2  # a clear error, not a traceback


@pytest.mark.parametrize("loss", ["klub", "elbo"])
def test_beta_diffusion_trains_and_samples_from_its_mean_image(small_world, tmp_path, loss):
    summary = train(small_world, tmp_path / "run", process="beta", beta_loss=loss)
    assert np.isfinite(summary["first_loss"]) and np.isfinite(summary["final_loss"])
    folder = tmp_path / "run" / "model"
    info = json.loads((folder / "recap_t2i.json").read_text())
    assert info["process"] == "beta" and info["training"]["beta_loss"] == loss
    assert not (folder / "scheduler").exists()  # no Gaussian schedule to save
    mean_image = np.load(folder / MEAN_IMAGE)
    assert mean_image.shape == (3, 16, 16) and -1 <= mean_image.min() < mean_image.max() <= 1

    model = load_t2i(folder)
    images = model.generate(PROMPTS, steps=5, seed=7)
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8
    assert np.array_equal(images, model.generate(PROMPTS, steps=5, seed=7, batch_size=1))  # batch-independent
    assert not np.array_equal(images, model.generate(PROMPTS, steps=5, seed=8))


def test_beta_diffusion_refuses_latents_and_cbdm(small_world, tmp_path):
    with pytest.raises(ValueError, match="vae"):
        T2ITrainingConfig(train="x", out="y", process="beta", vae="some/vae")
    with pytest.raises(ValueError, match="cbdm_tau"):
        T2ITrainingConfig(train="x", out="y", process="beta", cbdm_tau=1.0)
    with pytest.raises(ValueError, match="process"):
        T2ITrainingConfig(train="x", out="y", process="edm")

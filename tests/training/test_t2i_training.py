"""recap train-t2i on a world split: train-clip's data path and mixing, a loss that falls, a checkpoint that
resumes where it stopped, and a model folder that samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recap.cli import main
from recap.errors import RecapError
from recap.models.t2i import load_t2i
from recap.training.t2i_training import T2ITrainer, T2ITrainingConfig


def tiny_config(world, out, **changes) -> T2ITrainingConfig:
    options = dict(
        train=str(world / "sft"),
        out=str(out),
        p_original=0.0,
        steps=16,
        warmup_steps=2,
        batch_size=8,
        image_size=16,
        threads=1,
        checkpoint_every=8,
    )
    return T2ITrainingConfig(**{**options, **changes})


def test_trains_resumes_and_exports_a_model_that_samples(small_world, tmp_path):
    summary = T2ITrainer(tiny_config(small_world, tmp_path / "run"), progress=False).run()
    assert summary["steps"] == 16 and summary["steps_this_run"] == 16
    assert summary["final_loss"] < summary["first_loss"]  # noise prediction learns something in 16 steps
    assert set(summary["caption_choices"]) <= {"recaption", "fell_back_to_original"}  # p=0: recaptions only
    info = json.loads((tmp_path / "run" / "model" / "recap_t2i.json").read_text())
    assert info["weights"] == "ema" and info["training"]["p_original"] == 0.0 and info["text_encoder_sha256"]

    more = T2ITrainer(tiny_config(small_world, tmp_path / "run", steps=24), progress=False).run()
    assert more["steps"] == 24 and more["steps_this_run"] == 8  # resumed from step 16, not from 0

    images = load_t2i(tmp_path / "run" / "model").generate(["A small red heart is in the top left."], steps=2)
    assert images.shape == (1, 16, 16, 3) and images.dtype == np.uint8


def test_p_one_trains_on_alt_text(small_world, tmp_path):
    summary = T2ITrainer(tiny_config(small_world, tmp_path / "run", p_original=1.0, steps=4), progress=False).run()
    assert summary["caption_choices"].get("original", 0) > 0 and "recaption" not in summary["caption_choices"]


def test_bad_options_name_the_field(small_world, tmp_path):
    with pytest.raises(ValueError, match="caption_dropout"):
        tiny_config(small_world, tmp_path, caption_dropout=1.5)
    with pytest.raises(RecapError, match="unknown denoiser preset"):
        T2ITrainer(tiny_config(small_world, tmp_path, model="DiT-XL/2", steps=4), progress=False).run()
    assert main(["train-t2i", "--train", str(small_world / "sft"), "--out", str(tmp_path), "--p-original", "2"]) == 2

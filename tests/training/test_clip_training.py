"""recap train-clip on a world split: open_clip trains, the loss falls, a rerun resumes, open_clip loads the result;
and the caption mixing draws the paper's p and falls back when a caption is missing."""

import json

import numpy as np
import open_clip
import pytest
import torch

from recap.training.clip_data import (
    FELL_BACK_TO_ORIGINAL,
    FELL_BACK_TO_RECAPTION,
    NO_CAPTION,
    ORIGINAL,
    RECAPTION,
    pick_caption,
)
from recap.training.clip_training import ClipTrainer, ClipTrainingConfig


def test_pick_caption_mixes_and_falls_back():
    assert pick_caption("alt", "recap", 0.8, draw=0.5) == ("alt", ORIGINAL)
    assert pick_caption("alt", "recap", 0.8, draw=0.9) == ("recap", RECAPTION)
    assert pick_caption("alt", None, 0.0, draw=0.5) == ("alt", FELL_BACK_TO_ORIGINAL)  # a failed recaption
    assert pick_caption("  ", "recap", 1.0, draw=0.1) == ("recap", FELL_BACK_TO_RECAPTION)  # an empty alt-text
    assert pick_caption(None, None, 0.5, draw=0.1) == (None, NO_CAPTION)
    draws = np.random.default_rng(0).random(10_000)
    chosen = [pick_caption("alt", "recap", 0.8, draw)[1] for draw in draws]
    assert chosen.count(ORIGINAL) / len(chosen) == pytest.approx(0.8, abs=0.02)


def test_train_clip_on_a_world_split_resumes_and_loads_in_open_clip(small_world, tmp_path):
    config = ClipTrainingConfig(
        train=str(small_world / "web"),
        out=str(tmp_path / "clip"),
        p_original=0.5,
        steps=50,
        batch_size=32,
        warmup_steps=5,
        checkpoint_every=10,
        tokenizer_vocab=1024,
    )
    summary = ClipTrainer(config, progress=False).run()
    assert summary["steps"] == 50 and summary["final_loss"] < summary["first_loss"] - 0.3
    choices = summary["caption_choices"]
    assert choices[ORIGINAL] > 0 and choices[RECAPTION] > 0
    assert abs(choices[ORIGINAL] - choices[RECAPTION]) < 0.3 * (choices[ORIGINAL] + choices[RECAPTION])
    # a rerun with more steps continues from the checkpoint instead of starting over
    more = ClipTrainer(ClipTrainingConfig(**{**config.__dict__, "steps": 60}), progress=False).run()
    assert more["steps"] == 60 and more["steps_this_run"] == 10
    # open_clip alone loads the exported folder, with its tokenizer
    folder = tmp_path / "clip" / "model"
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    with torch.no_grad():
        features = model.eval().encode_text(tokenizer(["A large red circle is in the top left."]))
    assert features.shape == (1, 128) and torch.isfinite(features).all()
    assert json.loads((tmp_path / "clip" / "training_summary.json").read_text())["steps"] == 60


def test_two_ray_train_workers_read_different_shards_and_learn(ray_cluster, small_world, world_download, tmp_path):
    """--workers 2: the same loop as a TorchTrainer with DDP over gloo, each worker on its own shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recap.world.generate import load_truth

    shards, _ = world_download  # img2dataset's shards of the web split: 64 samples each
    truth = load_truth(small_world, "web").to_pylist()
    metadata = pq.read_table(sorted((small_world / "web" / "metadata").glob("*.parquet"))).to_pylist()
    alt = {row["uid"]: row["text"] for row in metadata}
    table = {"uid": [r["uid"] for r in truth], "org_caption": [alt[r["uid"]] for r in truth]}
    table["re_caption"] = [r["caption"] for r in truth]
    pq.write_table(pa.table(table), tmp_path / "captions.parquet")
    config = ClipTrainingConfig(
        train=str(shards),
        captions=str(tmp_path / "captions.parquet"),
        out=str(tmp_path / "clip"),
        p_original=0.0,
        steps=80,
        batch_size=16,
        warmup_steps=8,
        checkpoint_every=40,
        workers=2,
        cpus_per_worker=0.5,
    )
    summary = ClipTrainer(config, progress=False).run()
    ranks = {worker["rank"]: worker for worker in summary["workers"]}
    assert set(ranks) == {0, 1}
    assert ranks[0]["shards"] and ranks[1]["shards"] and not set(ranks[0]["shards"]) & set(ranks[1]["shards"])
    assert all(worker["samples"] > 0 and worker["steps"] == 80 for worker in ranks.values())
    assert summary["final_loss"] < summary["first_loss"] - 0.3
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'clip' / 'model'}")
    assert sum(p.numel() for p in model.parameters()) > 0

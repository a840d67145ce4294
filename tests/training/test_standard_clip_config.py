"""A standard open_clip architecture (ViT-S-32, CLIP's own 49,408-token tokenizer, 224 px) through the same
train-clip and eval-retrieval paths as the tiny one, from a local checkpoint file, offline: what a user with a
real ViT-B-16 file does, at a size the CI machine can run."""

import json

import open_clip
import torch

from recap.cli import main
from recap.training.clip_training import ClipTrainer, ClipTrainingConfig


def test_a_standard_config_trains_from_a_local_file_and_evaluates(small_world, tmp_path):
    torch.manual_seed(0)
    model, _, _ = open_clip.create_model_and_transforms("ViT-S-32")
    checkpoint = tmp_path / "vit_s_32.pt"
    torch.save(model.state_dict(), checkpoint)

    config = ClipTrainingConfig(
        train=str(small_world / "web"),
        out=str(tmp_path / "run"),
        model="ViT-S-32",
        init=str(checkpoint),
        steps=2,
        batch_size=4,
        warmup_steps=1,
        learning_rate=1e-5,
    )
    summary = ClipTrainer(config, progress=False).run()
    assert summary["steps"] == 2 and summary["final_loss"] is not None
    assert not (tmp_path / "run" / "tokenizer").exists()  # real models keep their own tokenizer
    folder = tmp_path / "run" / "model"
    exported, _, _ = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    assert open_clip.get_tokenizer(f"local-dir:{folder}")(["a red circle"]).shape == (1, 77)
    trained = {key: value for key, value in exported.state_dict().items()}
    assert any(not torch.equal(trained[key], value) for key, value in model.state_dict().items())

    out = tmp_path / "eval"
    argv = ["eval-retrieval", "--model", "ViT-S-32", "--pretrained", str(checkpoint)]
    assert main([*argv, "--world", str(small_world / "eval"), "--out", str(out), "--quiet"]) == 0
    results = json.loads((out / "retrieval.json").read_text())
    assert results["retrieval"]["images"] == 40 and set(results["zero_shot"]) == {"brand", "shape", "colour"}

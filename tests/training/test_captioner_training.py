"""Captioner training on a tiny world: the loss falls, quality rises, a killed run resumes exactly, and a
'reasoning' share of the prompt mix trains on world questions with their reference responses."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from safetensors.torch import load_file

from recap.errors import RecapError
from recap.training.captioner_training import CaptionerTrainer, CaptionerTrainingConfig
from recap.training.pairs import load_pairs
from recap.world.generate import WorldConfig, generate_world


@pytest.fixture(scope="module")
def training_world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train-world") / "world"
    generate_world(WorldConfig(seed=11, size=10, sft_size=300, eval_size=32), folder, progress=False)
    return folder


def _config(world, out, **changes):
    options = dict(
        train=str(world / "sft"),
        eval=str(world / "eval"),
        out=str(out),
        spec="micro",
        batch_size=16,
        vision_steps=20,
        text_steps=30,
        projector_steps=20,
        full_steps=150,
        warmup_steps=10,
        eval_every=1000,
        eval_images=32,
        checkpoint_every=50,
        learning_rate=3e-3,
        threads=1,
    )
    options.update(changes)
    return CaptionerTrainingConfig(**options)


def test_loss_falls_and_caption_quality_rises(training_world, tmp_path):
    trainer = CaptionerTrainer(_config(training_world, tmp_path / "run"), progress=False)
    before = trainer.evaluate()
    after = trainer.run()
    history = json.loads((tmp_path / "run" / "training_summary.json").read_text())["history"]
    full = [h["loss"] for h in history if h["stage"] == "full" and "loss" in h]
    assert full[-1] < 0.6 * full[0], full
    # An untrained model emits byte soup that states almost nothing; a briefly trained one writes the caption
    # format and covers far more of each scene, sizes first.
    assert before["attribute_recall"] < 0.1
    assert after["attribute_recall"] > before["attribute_recall"] + 0.2
    assert after["size_precision"] > 0.5
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
    assert json.loads((tmp_path / "run" / "model" / "recap_checkpoint.json").read_text())["config"]["seed"] == 0


def _command(world, out):
    return [
        os.path.join(os.path.dirname(sys.executable), "recap"),
        "train-captioner",
        "--train",
        str(world / "sft"),
        "--out",
        str(out),
        "--spec",
        "micro",
        "--batch-size",
        "16",
        "--vision-steps",
        "10",
        "--text-steps",
        "10",
        "--projector-steps",
        "10",
        "--full-steps",
        "80",
        "--warmup-steps",
        "5",
        "--checkpoint-every",
        "10",
        "--threads",
        "1",
        "--quiet",
    ]


def test_killed_training_resumes_to_the_same_weights(training_world, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_command(training_world, reference), check=True, capture_output=True, timeout=600)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(
        _command(training_world, interrupted), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = interrupted / "checkpoint" / "trainer_state.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if state.exists():
            try:
                current = json.loads(state.read_text())
            except json.JSONDecodeError:
                current = {}
            if current.get("stage") == "full" and current.get("step", 0) >= 20:
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (interrupted / "model").exists(), "the run was killed before it finished"
    killed_at = json.loads(state.read_text())

    resumed = subprocess.run(_command(training_world, interrupted), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert killed_at["stage"] == "full" and 20 <= killed_at["step"] < 80
    first = load_file(reference / "model" / "model.safetensors")
    second = load_file(interrupted / "model" / "model.safetensors")
    assert first.keys() == second.keys()
    for name in first:
        assert (first[name] - second[name]).abs().max() < 1e-5, name


def test_a_reasoning_share_trains_on_world_questions_with_reference_responses(training_world, tmp_path):
    config = _config(training_world, tmp_path / "qa", prompt_mix={"recap-datacomp-1b": 0.5, "reasoning": 0.5})
    trainer = CaptionerTrainer(config, progress=False)
    ids, target, _ = trainer._caption_batch("full", 0, list(range(16)))
    texts = [trainer.tokenizer.decode([t for t in row.tolist() if t >= 0]) for row in target]
    prompts = [trainer.tokenizer.decode(row.tolist()) for row in ids]
    answered = [text for text in texts if "\nAnswer: " in text]
    assert 3 <= len(answered) <= 13  # about half of the batch
    for prompt, text in zip(prompts, texts, strict=True):
        asks = "Think step by step" in prompt
        assert asks == ("\nAnswer: " in text)
        if asks:
            assert text.startswith("1. ")
    # the same step draws the same questions (a resumed run sees the batches it would have seen)
    again = trainer._caption_batch("full", 0, list(range(16)))[0]
    assert (again == ids).all()


def test_a_reasoning_share_needs_a_world_split(training_world, tmp_path):
    pairs = load_pairs(training_world / "sft", 64, limit=20, progress=False)
    images = []
    for image in pairs.images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        images.append(buffer.getvalue())
    table = tmp_path / "pairs.parquet"
    pq.write_table(pa.table({"uid": pairs.uids, "image": images, "caption": pairs.captions}), table)
    config = _config(training_world, tmp_path / "qa", train=str(table), prompt_mix={"reasoning": 1.0})
    with pytest.raises(RecapError, match="must be a world split"):
        CaptionerTrainer(config, progress=False)

"""The captioner interface on real (tiny) LLaVA checkpoints through the transformers backend."""

import numpy as np
import pytest
from PIL import Image

from recap.models.captioner import CaptionerConfig, describe, load_captioner, render_prompt
from recap.models.prompts import PROMPT_PRESETS, get_prompt
from recap.models.tiny_llava import TINY_SPECS, build_tiny_llava, save_checkpoint
from recap.models.transformers_backend import TransformersCaptioner
from recap.training.tokenizer_corpus import tokenizer_corpus

PAPER_PROMPT = "Please generate a detailed caption of this image. Please be as descriptive as possible."


@pytest.fixture(scope="module")
def micro_checkpoint(tmp_path_factory):
    model, processor = build_tiny_llava(TINY_SPECS["micro"], texts=tokenizer_corpus(1), seed=1)
    folder = tmp_path_factory.mktemp("micro") / "llava"
    save_checkpoint(model, processor, folder)
    return folder, model, processor


def _images(count):
    rng = np.random.default_rng(0)
    return [Image.fromarray((rng.random((48 + 16 * i, 64, 3)) * 255).astype("uint8")) for i in range(count)]


def test_defaults_follow_the_paper():
    config = CaptionerConfig(model="x")
    assert config.preset.text == PAPER_PROMPT
    assert config.max_new_tokens == 128 and config.temperature == 0
    assert config.generation_parameters()["do_sample"] is False


def test_prompt_presets():
    assert set(PROMPT_PRESETS) == {"recap-datacomp-1b", "alt-text-conditioned", "short", "reasoning"}
    reasoning = get_prompt("reasoning")
    assert reasoning.uses_question and not reasoning.uses_alt_text
    assert reasoning.render(question="Which brand? ").startswith("Which brand?\nThink step by step.")
    with pytest.raises(ValueError, match="needs a question per image"):
        reasoning.render()
    conditioned = get_prompt("alt-text-conditioned")
    assert conditioned.uses_alt_text and '"red  circle"' not in conditioned.render("red  circle")
    assert '"red circle"' in conditioned.render("red  circle")
    with pytest.raises(ValueError, match="needs each sample's alt-text"):
        conditioned.render(None)
    with pytest.raises(ValueError, match="unknown prompt preset"):
        CaptionerConfig(model="x", prompt="poem")


def test_checkpoint_renders_llama3_chat_prompt(micro_checkpoint):
    from transformers import AutoProcessor

    folder, _, _ = micro_checkpoint
    prompt = render_prompt(AutoProcessor.from_pretrained(folder), PAPER_PROMPT)
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<image>\n"
        + PAPER_PROMPT
        + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_batched_generation_equals_one_at_a_time(micro_checkpoint):
    folder, _, _ = micro_checkpoint
    images = _images(5)
    alt_texts = ["red circle", "a much longer alt-text that pads the others by many tokens", "x", None, "Zorblax"]
    for prompt in ("recap-datacomp-1b", "alt-text-conditioned"):
        batched = load_captioner(CaptionerConfig(model=str(folder), batch_size=8, max_new_tokens=20, prompt=prompt))
        single = load_captioner(CaptionerConfig(model=str(folder), batch_size=1, max_new_tokens=20, prompt=prompt))
        texts = [a or "" for a in alt_texts]
        assert batched.caption(images, texts) == single.caption(images, texts)


def test_saved_checkpoint_reloads_offline_with_identical_output(micro_checkpoint, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder, model, processor = micro_checkpoint
    config = CaptionerConfig(model=str(folder), batch_size=4, max_new_tokens=12)
    in_memory = TransformersCaptioner(config, model=model, processor=processor)
    reloaded = load_captioner(config)
    images = _images(3)
    assert reloaded.caption(images) == in_memory.caption(images)


def test_results_carry_tokens_and_finish_reason(micro_checkpoint):
    folder, _, _ = micro_checkpoint
    captioner = load_captioner(CaptionerConfig(model=str(folder), max_new_tokens=7))
    results = captioner.caption(_images(2))
    for result in results:
        assert isinstance(result.text, str)
        assert 1 <= result.output_tokens <= 7
        assert result.finish_reason == "length" or result.output_tokens < 7


def test_describe_names_prompt_and_parameters(micro_checkpoint):
    folder, _, _ = micro_checkpoint
    manifest = describe(CaptionerConfig(model=str(folder), prompt="short"))
    assert manifest["prompt_id"] == "short" and manifest["prompt_text"] == get_prompt("short").text
    assert manifest["generation"]["max_new_tokens"] == 128 and len(manifest["model_fingerprint"]) == 16

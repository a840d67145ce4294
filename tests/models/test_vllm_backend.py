"""The vLLM backend without vLLM: its missing-extra error, its pure mapping helpers and its prompts.

Generation itself needs vLLM and a GPU; what runs here is everything the backend decides before and after
`llm.generate`, checked against a real tiny LLaVA checkpoint and the transformers backend. tests/conftest.py
sets HF_HUB_OFFLINE=1 before anything imports transformers.
"""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
from PIL import Image

from recap.errors import RecapError
from recap.models.captioner import CaptionerConfig, CaptionResult, load_captioner
from recap.models.prompts import get_prompt
from recap.models.vllm_backend import (
    VllmCaptioner,
    build_requests,
    checkpoint_stop_token_ids,
    convert_output,
    engine_kwargs,
    render_prompts,
    sampling_kwargs,
)

VLLM_INSTALLED = importlib.util.find_spec("vllm") is not None
STOP = 7


def request_output(text, token_ids, finish_reason, request_id="0"):
    """The shape of a vllm.outputs.RequestOutput with one CompletionOutput (only the fields the backend reads)."""
    completion = SimpleNamespace(index=0, text=text, token_ids=token_ids, finish_reason=finish_reason)
    return SimpleNamespace(request_id=request_id, outputs=[completion], finished=True)


@pytest.mark.skipif(VLLM_INSTALLED, reason="vLLM is installed; this checks the error shown without it")
@pytest.mark.parametrize("build", [VllmCaptioner, load_captioner])
def test_without_vllm_the_error_names_the_install(build):
    config = CaptionerConfig(model="/no/such/model", backend="vllm")
    with pytest.raises(RecapError, match=r"pip install 'recap\[vllm\]'"):
        build(config)


def test_engine_kwargs_for_the_defaults():
    config = CaptionerConfig(model="/models/llava", backend="vllm")
    assert engine_kwargs(config) == {
        "model": "/models/llava",
        "revision": None,
        "dtype": "auto",
        "seed": 0,
        "max_model_len": None,
        "gpu_memory_utilization": 0.9,
        "tensor_parallel_size": 1,
        "limit_mm_per_prompt": {"image": 1},
    }


def test_engine_kwargs_carry_the_vllm_settings():
    config = CaptionerConfig(
        model="/models/llava",
        backend="vllm",
        revision="abc123",
        dtype="bfloat16",
        seed=5,
        max_model_len=2048,
        gpu_memory_utilization=0.8,
        tensor_parallel_size=2,
    )
    kwargs = engine_kwargs(config)
    assert kwargs["revision"] == "abc123"
    assert kwargs["dtype"] == "bfloat16"
    assert kwargs["seed"] == 5
    assert kwargs["max_model_len"] == 2048
    assert kwargs["gpu_memory_utilization"] == 0.8
    assert kwargs["tensor_parallel_size"] == 2


def test_sampling_kwargs_are_greedy_by_default():
    config = CaptionerConfig(model="m", backend="vllm")
    assert sampling_kwargs(config) == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 128, "seed": None}


def test_sampling_kwargs_for_a_sampling_config():
    config = CaptionerConfig(model="m", backend="vllm", temperature=0.7, top_p=0.9, max_new_tokens=64, seed=3)
    assert sampling_kwargs(config) == {"temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "seed": 3}


def test_build_requests_pairs_each_prompt_with_its_image():
    images = [Image.new("RGB", (32, 24), color) for color in ("red", "green", "blue")]
    prompts = [f"<image>\nprompt {i}" for i in range(3)]
    requests = build_requests(prompts, images)
    assert len(requests) == 3
    for request, prompt, image in zip(requests, prompts, images, strict=True):
        assert set(request) == {"prompt", "multi_modal_data"}
        assert request["prompt"] == prompt
        assert set(request["multi_modal_data"]) == {"image"}
        assert request["multi_modal_data"]["image"] is image
        assert request["multi_modal_data"]["image"].size == (32, 24)


def test_build_requests_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 prompts but 1 images"):
        build_requests(["a", "b"], [Image.new("RGB", (8, 8))])


def test_convert_output_on_stop_counts_the_stop_token():
    result = convert_output(request_output("  A red circle.\n", [11, 12, 13, STOP], "stop"), {STOP})
    assert result == CaptionResult(text="A red circle.", output_tokens=4, finish_reason="stop")


def test_convert_output_on_length():
    result = convert_output(request_output("A red circle and", (11, 12, 13), "length"), {STOP})
    assert result == CaptionResult(text="A red circle and", output_tokens=3, finish_reason="length")


@pytest.mark.parametrize("reason", ["abort", "error", "repetition", None])
def test_convert_output_raises_on_other_finish_reasons(reason):
    with pytest.raises(RuntimeError, match=repr(reason)):
        convert_output(request_output("partial", [11, 12], reason, request_id="42"), {STOP})


def test_convert_output_raises_when_stop_is_not_on_a_stop_token():
    with pytest.raises(RuntimeError, match="token 12"):
        convert_output(request_output("text", [11, 12], "stop"), {STOP})


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A real micro LLaVA saved as an HF folder, its model and its processor reloaded from disk."""
    from transformers import AutoProcessor

    from recap.models.tiny_llava import TINY_SPECS, build_tiny_llava, save_checkpoint
    from recap.training.tokenizer_corpus import tokenizer_corpus

    model, processor = build_tiny_llava(TINY_SPECS["micro"], texts=tokenizer_corpus(0))
    path = save_checkpoint(model, processor, tmp_path_factory.mktemp("tiny") / "micro")
    return path, model, AutoProcessor.from_pretrained(path)


def transformers_prompts(config, model, processor, images, alt_texts=None, questions=None):
    """The prompts the transformers backend sends for `images`: its caption() with generation cut out."""
    from recap.models.transformers_backend import TransformersCaptioner

    captioner = TransformersCaptioner(config, model=model, processor=processor)
    sent = []

    def record(batch, prompts):
        sent.extend(prompts)
        return [CaptionResult(text="", output_tokens=0, finish_reason="stop") for _ in batch]

    captioner._generate = record
    captioner.caption(images, alt_texts, questions)
    return sent


def test_prompts_match_the_transformers_backend(tiny_checkpoint):
    path, model, processor = tiny_checkpoint
    config = CaptionerConfig(model=str(path), backend="vllm", batch_size=2)
    images = [Image.new("RGB", (64, 64), "white") for _ in range(3)]
    prompts = render_prompts(processor, config, len(images))
    assert prompts == transformers_prompts(config, model, processor, images)
    paper_prompt = get_prompt("recap-datacomp-1b").text
    for prompt in prompts:
        assert prompt.count("<image>") == 1
        assert paper_prompt in prompt
    # The template writes BOS itself, so the backend asks vLLM not to add special tokens: one BOS, at the start
    # (a Llama-3 tokenizer with them added would prepend a second one).
    ids = processor.tokenizer(prompts[0], add_special_tokens=False)["input_ids"]
    assert ids[0] == processor.tokenizer.bos_token_id
    assert ids.count(processor.tokenizer.bos_token_id) == 1


def test_alt_text_preset_embeds_each_alt_text(tiny_checkpoint):
    path, model, processor = tiny_checkpoint
    config = CaptionerConfig(model=str(path), backend="vllm", prompt="alt-text-conditioned")
    images = [Image.new("RGB", (64, 64), "white") for _ in range(2)]
    alt_texts = ["Blue  square\non grass", "IMG_0042.jpg"]
    prompts = render_prompts(processor, config, len(images), alt_texts)
    assert prompts == transformers_prompts(config, model, processor, images, alt_texts)
    assert '"Blue square on grass"' in prompts[0]
    assert '"IMG_0042.jpg"' in prompts[1]
    assert all(prompt.count("<image>") == 1 for prompt in prompts)
    with pytest.raises(ValueError, match="alt_texts"):
        render_prompts(processor, config, len(images))


def test_reasoning_preset_asks_each_question_the_same_way_in_both_backends(tiny_checkpoint):
    path, model, processor = tiny_checkpoint
    config = CaptionerConfig(model=str(path), backend="vllm", prompt="reasoning")
    images = [Image.new("RGB", (64, 64), "white") for _ in range(2)]
    questions = ["How many red objects are in the image?", "Which brand made the star?"]
    prompts = render_prompts(processor, config, len(images), questions=questions)
    assert prompts == transformers_prompts(config, model, processor, images, questions=questions)
    for prompt, question in zip(prompts, questions, strict=True):
        assert question in prompt and 'starts with "Answer:"' in prompt and prompt.count("<image>") == 1
    with pytest.raises(ValueError, match="needs questions"):
        render_prompts(processor, config, len(images))


def test_stop_tokens_match_the_transformers_backend(tiny_checkpoint):
    from recap.models.transformers_backend import TransformersCaptioner

    path, model, processor = tiny_checkpoint
    config = CaptionerConfig(model=str(path))
    expected = TransformersCaptioner(config, model=model, processor=processor).stop_ids
    assert checkpoint_stop_token_ids(str(path), None, processor.tokenizer) == sorted(expected)

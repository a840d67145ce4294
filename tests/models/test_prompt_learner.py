"""Learned prompts: the context covers the template's words for both tokenizer families, the features before any
step equal the templates' (so zero-shot is unchanged until tuning moves it), gradients reach only the context,
and the file round-trips."""

import numpy as np
import open_clip
import pytest
import torch

from recap.evaluation.retrieval import TEMPLATES, _encode_texts
from recap.evaluation.retrieval_metrics import class_text_embeddings
from recap.models.clip import model_config, new_clip, train_clip_tokenizer
from recap.models.prompt_learner import (
    PromptLearner,
    TemplateContext,
    context_span,
    load_learned_prompts,
    read_prompt_file,
    save_learned_prompts,
)

CLASSES = ["circle", "square", "triangle", "star", "heart"]
TEXTS = ["a photo of a red circle.", "an image showing a blue square on a plain background.", "a green star"] * 20


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny config with its BPE (no start token, pooled at <eos>): open_clip's CLIP."""
    folder = tmp_path_factory.mktemp("prompt-clip")
    train_clip_tokenizer(TEXTS, vocab_size=300, out=folder / "tokenizer")
    model, _, tokenizer, config = new_clip("recap-clip-tiny", folder / "tokenizer", seed=0)
    return model.eval(), tokenizer, config


@pytest.fixture(scope="module")
def custom_text(tiny):
    """The same config as a CustomTextCLIP, whose text tower is open_clip's TextTransformer."""
    _, tokenizer, config = tiny
    torch.manual_seed(1)
    model = open_clip.CustomTextCLIP(
        embed_dim=config["embed_dim"], vision_cfg=config["vision_cfg"], text_cfg=config["text_cfg"]
    )
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def clip_tokenizer():
    """CLIP's own tokenizer (start and end tokens, pooled at the largest id) on a small text tower."""
    torch.manual_seed(2)
    text_cfg = {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}
    model = open_clip.CLIP(embed_dim=32, vision_cfg=model_config("recap-clip-tiny")["vision_cfg"], text_cfg=text_cfg)
    return model.eval(), open_clip.SimpleTokenizer()


def test_the_context_is_the_words_before_the_class(tiny, clip_tokenizer):
    _, bpe, _ = tiny
    _, simple = clip_tokenizer
    tokens, start, end = context_span(simple, "a photo of a {}.", CLASSES)
    assert (start, end) == (1, 5)  # after the start token: "a photo of a", as the authors' 4 vectors
    assert tokens[0, 5].item() == simple.encode("circle")[0]
    tokens, start, end = context_span(bpe, "a photo of a {}.", CLASSES)
    words = bpe(["a photo of a"])[0]
    assert start == 0 and end == int((words == 1).nonzero()[0])  # no start token; all the words' tokens
    assert context_span(bpe, "{}", CLASSES)[1:] == (0, 0)  # no words: nothing to learn
    _, start, end = context_span(simple, "a {} on a plain background.", CLASSES)
    assert (start, end) == (1, 2)  # the words after the class stay fixed
    with pytest.raises(ValueError, match="exactly one"):
        context_span(bpe, "a photo of a thing", CLASSES)
    with pytest.raises(ValueError, match="empty class"):
        context_span(bpe, "a {}.", ["circle", " "])


@pytest.mark.parametrize("family", ["tiny", "custom_text", "clip_tokenizer"])
def test_before_any_step_a_learned_prompt_is_its_template(family, request):
    model, tokenizer = request.getfixturevalue(family)[:2]
    for template in ("a photo of a {}.", "{}", "a {} on a plain background."):
        learned = TemplateContext(model, tokenizer, CLASSES, template)
        with torch.no_grad():
            expected = model.encode_text(tokenizer([template.format(name) for name in CLASSES]))
            torch.testing.assert_close(learned.text_features(model), expected, rtol=0, atol=1e-6)


def test_the_default_learner_starts_as_eval_retrievals_ensemble(tiny):
    model, tokenizer, _ = tiny
    learner = PromptLearner(model, tokenizer, CLASSES)
    assert learner.templates == TEMPLATES
    prompts = [template.format(name) for name in CLASSES for template in TEMPLATES]
    expected = class_text_embeddings(_encode_texts(model, tokenizer, prompts, 256), len(CLASSES))
    with torch.no_grad():
        np.testing.assert_allclose(learner.text_features(model).double().numpy(), expected, atol=1e-6)


def test_gradients_reach_only_the_contexts(tiny):
    model, tokenizer, _ = tiny
    learner = PromptLearner(model, tokenizer, CLASSES)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    try:
        learner.text_features(model)[:, 0].sum().backward()
    finally:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    assert all(parameter.grad is None for parameter in model.parameters())
    assert [name for name, _ in learner.named_parameters()] == [f"prompts.{i}.context" for i in range(len(TEMPLATES))]
    for template, context in zip(TEMPLATES, learner.contexts, strict=True):
        assert context.grad is not None and (context.grad.abs().sum() > 0 or template == "{}")
    assert learner.contexts[0].shape[0] == 0  # "{}"


def test_learned_prompts_round_trip_through_the_folder(tiny, tmp_path):
    model, tokenizer, _ = tiny
    learners = {
        "shape": PromptLearner(model, tokenizer, CLASSES),
        "colour": PromptLearner(model, tokenizer, ["red", "blue"], ("a {}.",)),
    }
    with torch.no_grad():
        for learner in learners.values():
            for context in learner.contexts:
                context.add_(0.1 * torch.randn_like(context))
    assert read_prompt_file(tmp_path) is None and load_learned_prompts(tmp_path, model, tokenizer) == {}
    save_learned_prompts(tmp_path, learners, logit_scale=3.5, record={"steps": 7})
    payload = read_prompt_file(str(tmp_path))
    assert payload["logit_scale"] == 3.5 and payload["record"] == {"steps": 7}
    loaded = load_learned_prompts(tmp_path, model, tokenizer)
    assert list(loaded) == ["shape", "colour"] and loaded["colour"].templates == ("a {}.",)
    with torch.no_grad():
        for name, learner in learners.items():
            assert torch.equal(loaded[name].text_features(model), learner.text_features(model))
    payload["class_sets"]["colour"]["contexts"][0] = torch.zeros(9, 128)
    torch.save(payload, tmp_path / "pouf_prompt.pt")
    with pytest.raises(ValueError, match="shape"):
        load_learned_prompts(tmp_path, model, tokenizer)

"""The tiny CLIP is a plain open_clip model: open_clip's own loaders read its checkpoint and its folder."""

import numpy as np
import open_clip
import pytest
import torch

from recap.models.clip import (
    image_tensor,
    load_clip,
    model_config,
    new_clip,
    register_configs,
    save_clip_folder,
    train_clip_tokenizer,
)

TEXTS = [
    "A large red circle is in the top left.",
    "two small blue squares on a white background",
    "Acme red star | free clip art",
] * 20


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    train_clip_tokenizer(TEXTS, vocab_size=300, out=folder / "tokenizer")
    model, preprocess, tokenizer, config = new_clip("recap-clip-tiny", folder / "tokenizer", seed=0)
    return folder, model.eval(), tokenizer, config


def _embeddings(model, tokenizer, pixels):
    with torch.no_grad():
        return model.encode_image(image_tensor(pixels, model)), model.encode_text(tokenizer(TEXTS[:3]))


def test_tiny_configs_are_registered_with_open_clip():
    assert "recap-clip-tiny" in register_configs() and "recap-clip-tiny" in open_clip.list_models()
    assert model_config("recap-clip-tiny")["vision_cfg"]["image_size"] == 64
    with pytest.raises(KeyError, match="no open_clip model config"):
        model_config("no-such-clip")


def test_tokenizer_lowercases_appends_eos_and_keeps_it_when_truncating(tiny):
    _, _, tokenizer, _ = tiny
    tokens = tokenizer(["A Red Circle", "a red circle", "word " * 100])
    assert tokens.shape == (3, 32)
    assert torch.equal(tokens[0], tokens[1])  # case does not matter
    for row in tokens:
        ids = row.tolist()
        assert ids.count(1) == 1  # one <eos> per text, where the text tower pools
        assert all(token == 0 for token in ids[ids.index(1) + 1 :])  # padding after it
    assert tokens[2, -1].item() == 1  # a text longer than the context is cut, its <eos> kept


def test_folder_and_state_dict_reload_through_open_clip_itself(tiny, tmp_path):
    folder, model, tokenizer, config = tiny
    pixels = np.random.default_rng(0).integers(0, 255, size=(2, 64, 64, 3), dtype=np.uint8)
    images, texts = _embeddings(model, tokenizer, pixels)
    out = save_clip_folder(model, config, tokenizer, tmp_path / "model")
    # open_clip alone: local-dir model and tokenizer
    reloaded, _, _ = open_clip.create_model_and_transforms(f"local-dir:{out}")
    local_tokenizer = open_clip.get_tokenizer(f"local-dir:{out}")
    assert torch.equal(local_tokenizer(TEXTS[:3]), tokenizer(TEXTS[:3]))
    again_images, again_texts = _embeddings(reloaded.eval(), local_tokenizer, pixels)
    assert torch.allclose(images, again_images) and torch.allclose(texts, again_texts)
    # a plain state dict through the registered name, as open_clip's trainer checkpoints are loaded
    torch.save(model.state_dict(), tmp_path / "state.pt")
    named, _, _ = open_clip.create_model_and_transforms("recap-clip-tiny", pretrained=str(tmp_path / "state.pt"))
    assert torch.allclose(_embeddings(named.eval(), tokenizer, pixels)[1], texts)
    # recap's loader takes the folder (or local-dir:) and gives the same model
    loaded, _, loaded_tokenizer = load_clip(str(out))
    assert torch.allclose(_embeddings(loaded, loaded_tokenizer, pixels)[0], images)


def test_image_tensor_checks_the_size(tiny):
    _, model, _, _ = tiny
    with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\)"):
        image_tensor(np.zeros((1, 32, 32, 3), dtype=np.uint8), model)

"""Recap-DiT's model parts on tiny sizes: the text condition (chunked, masked), the folder round trip, seeds,
guidance modes, the text-encoder check, and the latent path through a local AutoencoderKL folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recap.errors import RecapError
from recap.models.clip import text_token_counts
from recap.models.t2i import (
    T2I_CONFIG,
    ImageCodec,
    TextToImage,
    load_t2i,
    new_denoiser,
    training_scheduler,
)
from recap.models.text_conditioner import TextConditioner, split_sentences

LONG = (
    "The image shows three objects on a light blue background. A large purple heart is in the top left. "
    "A small orange star is in the top right. A small brown triangle is in the bottom right."
)


@pytest.fixture(scope="module")
def conditioner():
    return TextConditioner()


@pytest.fixture(scope="module")
def tiny_model(conditioner, tmp_path_factory):
    """An untrained tiny DiT saved as a model folder (the untrained weights are enough for the plumbing)."""
    torch.set_num_threads(1)
    transformer = new_denoiser("recap-dit-tiny", sample_size=16, channels=3, caption_channels=conditioner.width)
    scheduler = training_scheduler(latent=False)
    info = {"text_encoder": "shipped:clip-tiny", "image_size": 16, "max_text_chunks": 4, "vae": None}
    from recap.models.text_conditioner import text_encoder_fingerprint

    info["text_encoder_sha256"] = text_encoder_fingerprint("shipped:clip-tiny")
    folder = tmp_path_factory.mktemp("t2i") / "model"
    TextToImage(transformer, conditioner, ImageCodec(16), dict(scheduler.config), info).save(folder)
    return folder


def test_sentences_split_after_full_stops():
    assert split_sentences("A red heart. A blue star!  Done?") == ["A red heart.", "A blue star!", "Done?"]
    assert split_sentences("") == [""]


def test_a_long_caption_is_chunked_at_sentences_that_each_fit(conditioner):
    assert text_token_counts(conditioner.tokenizer, [LONG])[0] > conditioner.context_length  # would be cut
    chunks = conditioner.chunks(LONG)
    assert len(chunks) >= 2 and " ".join(chunks) == LONG
    assert all(count <= conditioner.context_length for count in text_token_counts(conditioner.tokenizer, chunks))
    assert conditioner.chunks("A small red heart.") == ["A small red heart."]


def test_features_join_chunks_and_mask_the_padding(conditioner):
    features, mask = conditioner([LONG, "A small red heart.", ""])
    chunks = len(conditioner.chunks(LONG))
    assert features.shape == (3, chunks * conditioner.context_length, conditioner.width)
    counts = text_token_counts(conditioner.tokenizer, conditioner.chunks(LONG))
    assert mask[0].sum().item() == sum(counts)  # every real token of every chunk, no padding
    assert mask[1].sum().item() == text_token_counts(conditioner.tokenizer, ["A small red heart."])[0]
    assert mask[2].sum().item() >= 1  # the empty prompt still has its end token to attend to
    assert torch.all(features[1, mask[1] == 0] == 0)  # short texts are padded with zeros past their chunk


def test_sentence_chunking_encodes_each_sentence_alone():
    conditioner = TextConditioner(chunking="sentences")
    assert conditioner.chunks(LONG) == split_sentences(LONG)  # four sentences, four chunks
    assert conditioner.chunks("A small red heart. A blue star.") == ["A small red heart.", "A blue star."]
    many = " ".join(f"Sentence {n}." for n in range(6))  # more than max_chunks: packed instead
    packed = conditioner.chunks(many)
    assert 1 <= len(packed) < 6 and " ".join(packed) == many
    assert all(count <= conditioner.context_length for count in text_token_counts(conditioner.tokenizer, packed))
    with pytest.raises(RecapError, match="unknown text chunking"):
        TextConditioner(chunking="words")


def test_more_chunks_than_allowed_are_counted_as_cut():
    conditioner = TextConditioner(max_chunks=1)
    before = conditioner.cut
    assert len(conditioner.chunks(LONG)) == 1
    assert conditioner.cut == before + 1


def test_same_seed_same_images_and_the_folder_round_trips(tiny_model):
    model = load_t2i(tiny_model)
    prompts = ["A small red heart is in the top left.", "A large blue square is in the bottom right."]
    first = model.generate(prompts, steps=3, seed=5)
    assert first.shape == (2, 16, 16, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, load_t2i(tiny_model).generate(prompts, steps=3, seed=5))
    assert not np.array_equal(first, model.generate(prompts, steps=3, seed=6))
    # Image i comes from seed + i whatever batch it is in: alone, the second image is the same to float rounding.
    alone = model.generate(prompts[1:], steps=3, seed=6)
    assert np.abs(alone[0].astype(int) - model.generate(prompts, steps=3, seed=5)[1].astype(int)).max() <= 1


@pytest.mark.parametrize("scheduler", ["ddim", "dpm", "ddpm"])
def test_every_guidance_and_scheduler_draws(tiny_model, scheduler):
    model = load_t2i(tiny_model)
    for guidance in ("cfg", "negative", "perp-neg"):
        negative = None if guidance == "cfg" else "green"
        images = model.generate(
            ["A heart."], negative_prompts=negative, guidance=guidance, steps=2, scheduler=scheduler
        )
        assert images.shape == (1, 16, 16, 3)


def test_perp_neg_defaults_to_the_plain_negatives_weight(tiny_model):
    """neg + s (cond - neg) subtracts the negative's direction with weight s - 1: Perp-Neg's default is that."""
    model = load_t2i(tiny_model)
    options = dict(negative_prompts="green", guidance="perp-neg", steps=2, scale=3.0)
    default = model.generate(["A heart."], **options)
    assert np.array_equal(default, model.generate(["A heart."], negative_scale=2.0, **options))
    assert not np.array_equal(default, model.generate(["A heart."], negative_scale=3.0, **options))


def test_bad_guidance_requests_are_refused(tiny_model):
    model = load_t2i(tiny_model)
    with pytest.raises(RecapError, match="unknown guidance"):
        model.generate(["A heart."], guidance="sideways")
    with pytest.raises(RecapError, match="needs a negative prompt"):
        model.generate(["A heart."], guidance="perp-neg")
    with pytest.raises(RecapError, match="unknown scheduler"):
        model.generate(["A heart."], scheduler="euler-x", steps=2)


def test_a_changed_text_encoder_is_refused(tiny_model, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    info = json.loads((copy / T2I_CONFIG).read_text())
    (copy / T2I_CONFIG).write_text(json.dumps(dict(info, text_encoder_sha256="0" * 64)))
    with pytest.raises(RecapError, match="sha256"):
        load_t2i(copy)
    with pytest.raises(RecapError, match="not a text-to-image model folder"):
        load_t2i(tmp_path)


def test_latent_space_through_a_local_autoencoder_folder(conditioner, tmp_path):
    """Real data trains on VAE latents: a tiny random AutoencoderKL folder stands in for SD's (same class)."""
    from diffusers import AutoencoderKL

    AutoencoderKL(
        block_out_channels=(8, 8),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    ).save_pretrained(tmp_path / "vae")
    codec = ImageCodec(32, str(tmp_path / "vae"))
    assert (codec.channels, codec.sample_size) == (4, 16)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    latents = codec.encode(images, torch.Generator().manual_seed(0))
    assert latents.shape == (2, 4, 16, 16)
    assert codec.decode(latents).shape == (2, 32, 32, 3)
    transformer = new_denoiser("recap-dit-tiny", sample_size=16, channels=4, caption_channels=conditioner.width)
    scheduler = training_scheduler(latent=True)
    model = TextToImage(transformer, conditioner, codec, dict(scheduler.config), {"image_size": 32})
    assert model.generate(["A heart."], steps=2).shape == (1, 32, 32, 3)


def test_half_precision_folder_loads_as_float32_and_draws_nearly_the_same(tiny_model, tmp_path):
    model = load_t2i(tiny_model)
    model.save(tmp_path / "half", half=True)
    half = load_t2i(tmp_path / "half")
    assert next(half.transformer.parameters()).dtype == torch.float32
    size = lambda folder: sum(f.stat().st_size for f in (folder / "transformer").glob("*.safetensors"))  # noqa: E731
    assert size(tmp_path / "half") < 0.6 * size(tiny_model)
    prompts = ["A small red heart is in the top left."]
    full, rounded = model.generate(prompts, steps=3), half.generate(prompts, steps=3)
    assert np.abs(full.astype(int) - rounded.astype(int)).mean() < 2.0

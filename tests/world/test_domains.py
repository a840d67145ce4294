"""Image domains (`recap world --domain`): the same scenes, captions and alt-text drawn in another style, each
domain a pure function of the config, the default domain exactly as it was."""

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw, ImageFilter

from recap.cli import main
from recap.world.domains import DEFAULT_DOMAIN, DOMAINS, get_domain, outline_mask
from recap.world.generate import SPLITS, WorldConfig, generate_world, load_manifest, load_truth, make_sample

from .digest import DEFAULT_WORLD_DIGEST, world_digest

SHIFTED = [name for name in DOMAINS if name != DEFAULT_DOMAIN]


def _pixels(image_bytes: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_bytes)).convert("RGB"), dtype=np.int16)


def test_registry_has_shifted_domains_with_descriptions():
    assert len(SHIFTED) >= 2
    assert all(domain.description and domain.name == name for name, domain in DOMAINS.items())
    assert not get_domain(DEFAULT_DOMAIN).is_camera and get_domain(DEFAULT_DOMAIN).outline is None


@pytest.mark.parametrize("domain", SHIFTED)
def test_a_domain_changes_the_pixels_and_nothing_else(domain):
    default, shifted = WorldConfig(seed=5, size=10), WorldConfig(seed=5, size=10, domain=domain)
    clearly_changed = []
    for split in SPLITS:
        for index in range(8):
            before, after = make_sample(default, split, index), make_sample(shifted, split, index)
            for field in ("uid", "scene", "caption", "alt_text", "alt_kind", "serve", "image_format", "original_size"):
                assert getattr(before, field) == getattr(after, field), field
            assert before.image_bytes != after.image_bytes
            changed = np.abs(_pixels(before.image_bytes) - _pixels(after.image_bytes)).max(axis=-1) > 40
            clearly_changed.append(changed.sum() >= 10)  # other pixels, not JPEG noise
    # Not every image: a small marked star is all mark and arms thinner than the outline's stroke.
    assert np.mean(clearly_changed) > 0.75


@pytest.mark.parametrize("domain", SHIFTED)
def test_a_domain_world_keeps_the_text_records_its_domain_and_is_deterministic(domain, tmp_path):
    config = WorldConfig(seed=6, size=12, sft_size=4, eval_size=4, domain=domain)
    first = generate_world(config, tmp_path / "first", progress=False)
    again = generate_world(config, tmp_path / "again", progress=False)
    default = generate_world(
        WorldConfig(seed=6, size=12, sft_size=4, eval_size=4), tmp_path / "default", progress=False
    )
    assert first == again
    assert first["domain"] == {"name": domain, "description": DOMAINS[domain].description}
    assert load_manifest(tmp_path / "first")["config"]["domain"] == domain
    assert default["domain"]["name"] == DEFAULT_DOMAIN
    # The alt-text quality (scored against the scenes) is the default domain's: the scenes and texts are.
    assert first["splits"] == default["splits"]
    for split in SPLITS:
        assert load_truth(tmp_path / "first", split) == load_truth(tmp_path / "default", split)
        metadata = {
            world: pq.read_table(tmp_path / world / split / "metadata").drop_columns(["sha256"])
            for world in ("first", "default")
        }
        assert metadata["first"] == metadata["default"]
        images = {world: sorted((tmp_path / world / split / "images").iterdir()) for world in ("first", "again")}
        assert [p.name for p in images["first"]] == [p.name for p in images["again"]]
        assert [p.read_bytes() for p in images["first"]] == [p.read_bytes() for p in images["again"]]
        default_images = sorted((tmp_path / "default" / split / "images").iterdir())
        assert [p.name for p in images["first"]] == [p.name for p in default_images]
        assert all(a.read_bytes() != b.read_bytes() for a, b in zip(images["first"], default_images, strict=True))


def test_the_default_domain_named_is_the_world_as_it_was():
    """`domain="default"` spelt out draws the pinned digest of the world before domains existed (the digest of
    `test_long_tail.test_default_world_draws_what_it_always_drew`, which checks the implicit default)."""
    config = WorldConfig(seed=0, size=200, domain=DEFAULT_DOMAIN)
    assert world_digest(config) == DEFAULT_WORLD_DIGEST


def test_unknown_domain_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="domain must be one of"):
        WorldConfig(domain="watercolour")


def test_cli_world_domain(tmp_path, capsys):
    out = tmp_path / "world"
    main(["world", "--out", str(out), "--size", "3", "--sft-size", "1", "--eval-size", "1", "--domain", SHIFTED[0]])
    assert load_manifest(out)["domain"]["name"] == SHIFTED[0]
    assert f"(domain {SHIFTED[0]})" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["world", "--out", str(tmp_path / "other"), "--size", "3", "--domain", "watercolour"])


def test_outline_mask_is_the_shape_less_its_erosion():
    shape = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(shape).polygon([(5, 5), (90, 20), (40, 80)], fill=255)
    ImageDraw.Draw(shape).ellipse([0, 60, 30, 95], fill=255)  # cut by the frame: stays open there
    for width in (1, 3):
        eroded = np.asarray(shape.filter(ImageFilter.MinFilter(2 * width + 1)))
        expected = np.asarray(shape) - np.minimum(np.asarray(shape), eroded)
        assert np.array_equal(np.asarray(outline_mask(shape, width)), expected)

"""Reader and decode stage on a tar holding every kind of broken sample."""

import numpy as np

from recap.pipeline.stage import apply_stage
from recap.schema import STATUS_BAD_INPUT, STATUS_OK
from recap.stages.decode import DecodeImages, pixels_to_array
from recap.stages.webdataset_reader import list_shards, read_shard

from ..shard_factory import bad_input_shard


def _decode_all(path, **options):
    shard = list_shards(str(path))[0]
    stage = DecodeImages(image_size=32, max_pixels=50_000, **options)
    rows = []
    for batch in read_shard(shard, rows_per_batch=5):
        out = apply_stage(stage, batch)
        rows.extend({k: out[k][i] for k in out} for i in range(len(out["key"])))
    return rows


def test_every_bad_sample_is_a_row_with_its_reason(tmp_path):
    expected = bad_input_shard(tmp_path / "00000.tar")
    rows = _decode_all(tmp_path / "00000.tar")
    assert sorted(row["key"] for row in rows) == sorted(expected)
    assert all(row["shard_total"] == len(expected) for row in rows)
    for row in rows:
        name, error = expected[row["key"]]
        if error is None:
            assert row["status"] == STATUS_OK, (name, row["error"])
            assert pixels_to_array(row["pixels"]).shape == (32, 32, 3)
            assert row["uid"] == f"{int(row['key']):032x}"
        else:
            assert row["status"] == STATUS_BAD_INPUT, name
            assert error in row["error"], (name, row["error"])
            assert row["pixels"] is None
    bad = sum(row["status"] == STATUS_BAD_INPUT for row in rows)
    assert bad >= 10 and bad + sum(row["status"] == STATUS_OK for row in rows) == len(expected)
    assert len(expected) >= 17  # ten kinds of broken sample, six odd-but-valid ones, one plain good one


def test_odd_modes_become_rgb_and_panoramas_are_padded(tmp_path):
    expected = bad_input_shard(tmp_path / "00000.tar")
    by_name = {expected[row["key"]][0]: row for row in _decode_all(tmp_path / "00000.tar")}
    rgba = pixels_to_array(by_name["rgba"]["pixels"])
    assert rgba.dtype == np.uint8 and rgba.shape == (32, 32, 3)
    wide = pixels_to_array(by_name["panorama"]["pixels"])
    assert tuple(wide[0, 16]) == (122, 116, 104)  # padding colour above the wide image


def test_damaged_tar_keeps_what_it_had(tmp_path):
    bad_input_shard(tmp_path / "full.tar")
    data = (tmp_path / "full.tar").read_bytes()
    (tmp_path / "00001.tar").write_bytes(data[: len(data) // 2])
    rows = [row for batch in read_shard(list_shards(str(tmp_path / "00001.tar"))[0]) for row in [batch]]
    keys = [k for batch in rows for k in batch["key"]]
    errors = [e for batch in rows for e in batch["read_error"] if e]
    assert 0 < len(keys) < 18 and len(errors) == 1 and "damaged" in errors[0]


def test_exif_orientation_is_applied():
    import io

    from PIL import Image

    from recap.stages.decode import decode_image

    wide = Image.new("RGB", (40, 20), (220, 20, 20))
    wide.paste((20, 20, 220), (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: shown turned 90 degrees clockwise, so the left half is on top
    buffer = io.BytesIO()
    wide.save(buffer, format="JPEG", exif=exif, quality=95)
    pixels = decode_image(buffer.getvalue(), 40, 10**6).astype(int)
    top, bottom = pixels[5, 20], pixels[35, 20]
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]
    assert abs(pixels[20, 2] - (122, 116, 104)).max() < 10  # padded at the sides: it became a tall image


def test_plain_jpegs_take_libjpeg_turbo_and_give_pils_pixels(monkeypatch):
    """The simplejpeg path must not change a pixel: every kind of plain JPEG it takes decodes as PIL's path does,
    and the files it must leave to PIL (CMYK, EXIF, cut short, not a JPEG) are left to it."""
    import io

    from PIL import Image

    from recap.stages import decode

    rng = np.random.default_rng(0)

    def jpeg(size, mode="RGB", **options):
        image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90, **options)
        return buffer.getvalue()

    plain = {
        "exact size": jpeg((32, 32)),
        "resized": jpeg((48, 48)),
        "wide": jpeg((50, 30)),
        "grey": jpeg((40, 40), "L"),
        "progressive 4:4:4": jpeg((40, 36), progressive=True, subsampling=0),
        "draft scale 1/2": jpeg((80, 70)),
        "draft scale 1/8": jpeg((300, 260), "L"),
        "smaller than asked": jpeg((20, 24)),
    }
    exif = Image.Exif()
    exif[0x0112] = 3
    left_to_pil = {
        "cmyk": jpeg((40, 40), "CMYK"),
        "exif": jpeg((40, 40), exif=exif),
        "cut short": jpeg((40, 40))[:-300],
        "not an image": bytes(Image.new("RGB", (40, 40)).tobytes()),
    }
    for name, data in plain.items():
        assert decode._decode_plain_jpeg(data, 32, 10**6) is not None, name
    for name, data in left_to_pil.items():
        assert decode._decode_plain_jpeg(data, 32, 10**6) is None, name
    fast = {name: decode.decode_image(data, 32, 10**6) for name, data in plain.items()}
    monkeypatch.setattr(decode, "_decode_plain_jpeg", lambda *args: None)
    for name, data in plain.items():
        assert np.array_equal(fast[name], decode.decode_image(data, 32, 10**6)), name
    assert fast["exact size"].shape == (32, 32, 3) and fast["grey"].shape == (32, 32, 3)

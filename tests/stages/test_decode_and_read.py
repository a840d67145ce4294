"""Reader and decode stage on a tar holding every kind of broken sample."""

import numpy as np

from recap.pipeline.stage import apply_stage
from recap.schema import STATUS_BAD_INPUT, STATUS_OK
from recap.stages.decode import DecodeImages, pixels_to_array
from recap.stages.webdataset_reader import list_shards, read_shard

from ..shard_factory import CUT_SAMPLES, WARNINGS, bad_input_shard, cut_record, cut_shard


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
        alt_text, warning = WARNINGS.get(name, (row["org_caption"], None))
        assert (row["org_caption"], row["input_warning"]) == (alt_text, warning), name
    bad = sum(row["status"] == STATUS_BAD_INPUT for row in rows)
    assert bad == 11 and bad + sum(row["status"] == STATUS_OK for row in rows) == len(expected) == 19
    assert sum(row["input_warning"] is not None for row in rows) == len(WARNINGS) == 1


def test_a_caption_that_is_not_utf8_is_captioned_and_flagged(tmp_path):
    """Recaptioning exists for samples with poor alt-text: a .txt with broken UTF-8 keeps its image (ok, pixels
    decoded), its alt-text with U+FFFD where the bytes broke, and a warning; broken .json metadata stays bad."""
    expected = bad_input_shard(tmp_path / "00000.tar")
    by_name = {expected[row["key"]][0]: row for row in _decode_all(tmp_path / "00000.tar")}
    broken = by_name["bad_utf8"]
    assert broken["status"] == STATUS_OK and broken["error"] is None
    assert pixels_to_array(broken["pixels"]).shape == (32, 32, 3)
    assert broken["org_caption"] == "caf\ufffd \ufffd"
    assert broken["input_warning"] == (
        "the caption (.txt) is not valid UTF-8 (invalid continuation byte at byte 3); decoded with replacement "
        "characters"
    )
    assert by_name["good"]["input_warning"] is None
    json_row = by_name["bad_utf8_json"]
    assert json_row["status"] == STATUS_BAD_INPUT and json_row["pixels"] is None
    assert json_row["error"] == "the .json metadata is not valid UTF-8 (invalid continuation byte at byte 12)"


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


def test_a_cut_tar_accounts_for_every_sample_img2dataset_downloaded(tmp_path):
    """With img2dataset's index beside a tar cut short, each sample it records as downloaded that the tar lost is
    a bad_input row with the parquet's uid, url and caption, counted in shard_total; a key only in the tar is
    kept; a failed download is not a row. Without the index, the tar alone counts (as before)."""
    expected = cut_shard(tmp_path / "00001.tar")
    rows = _decode_all(tmp_path / "00001.tar")
    by_kind = {}
    for row in rows:
        by_kind.setdefault(expected[row["key"]][0], []).append(row["key"])
    assert sorted(row["key"] for row in rows) == sorted(expected)  # the failed download is not a row
    assert {kind: len(keys) for kind, keys in by_kind.items()} == {"unlisted": 1, "whole": 3, "damaged": 1, "lost": 3}
    assert len(rows) == (CUT_SAMPLES - 1) + 1  # the parquet's successes + the key it does not list
    assert all(row["shard_total"] == len(rows) for row in rows)
    for row in rows:
        kind, error = expected[row["key"]]
        if error is None:
            assert row["status"] == STATUS_OK and row["error"] is None, (kind, row["error"])
        else:
            assert row["status"] == STATUS_BAD_INPUT and error in row["error"], (kind, row["error"])
        if kind == "lost":
            record = cut_record(row["key"], "success")
            assert row["error"] == (
                "missing from the tar: img2dataset recorded this sample as downloaded in 00001.parquet but "
                "00001.tar ends before it (cut short?); re-download the shard"
            )
            assert (row["uid"], row["url"], row["org_caption"]) == (record["uid"], record["url"], record["caption"])
            assert (row["original_width"], row["original_height"], row["pixels"]) == (800, 600, None)
    assert sorted(by_kind["lost"]) == [f"{index:09d}" for index in (5, 6, 7)]

    (tmp_path / "00001.parquet").unlink()
    kept = _decode_all(tmp_path / "00001.tar")
    assert sorted(row["key"] for row in kept) == sorted(by_kind["unlisted"] + by_kind["whole"] + by_kind["damaged"])
    assert all(row["shard_total"] == 5 for row in kept)


def test_a_whole_tar_missing_a_downloaded_sample_says_so(tmp_path):
    """A complete tar that lacks a key the parquet lists as downloaded: the row says the tar does not hold it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    expected = bad_input_shard(tmp_path / "00002.tar")
    records = [cut_record(key, "success") for key in sorted(expected)] + [cut_record("000000099", "success")]
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "00002.parquet")
    rows = {row["key"]: row for row in _decode_all(tmp_path / "00002.tar")}
    assert set(rows) == set(expected) | {"000000099"} and rows["000000099"]["shard_total"] == len(expected) + 1
    assert rows["000000099"]["error"] == (
        "missing from the tar: img2dataset recorded this sample as downloaded in 00002.parquet but 00002.tar does "
        "not hold it; re-download the shard"
    )
    assert [key for key, row in rows.items() if row["error"] and "missing from the tar" in row["error"]] == [
        "000000099"
    ]


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

"""Real img2dataset against the world's server on 127.0.0.1: shards, uids, and failures recorded."""

import io
import json
import tarfile
from collections import Counter

import pyarrow.parquet as pq
import pytest
from PIL import Image

from recap.errors import RecapError
from recap.ingest.download import SUMMARY_FILE, DownloadConfig, check_metadata, failure_reason
from recap.world.generate import load_truth

EXPECTED_STATUS = {
    "ok": ("success", None),
    "http_404": ("failed_to_download", "http_404"),
    "timeout": ("failed_to_download", "timeout"),
    "truncated": ("failed_to_download", "hash_mismatch"),
    "not_an_image": ("failed_to_download", "hash_mismatch"),
}


def test_tars_carry_uid_url_and_caption(small_world, world_download):
    out, summary = world_download
    metadata = {}
    for path in sorted((small_world / "web" / "metadata").glob("*.parquet")):
        metadata.update({row["uid"]: row for row in pq.read_table(path).to_pylist()})
    tars = sorted(out.glob("*.tar"))
    assert len(tars) == summary.shards >= 3
    samples = 0
    for path in tars:
        with tarfile.open(path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        keys = {name.rsplit(".", 1)[0] for name in members}
        for key in keys:
            assert {f"{key}.jpg", f"{key}.txt", f"{key}.json"} <= set(members)
            record = json.loads(members[f"{key}.json"])
            source = metadata[record["uid"]]
            assert record["url"] == source["url"]
            assert members[f"{key}.txt"].decode() == source["text"] == record["caption"]
            assert record["key"] == key and record["status"] == "success"
            assert Image.open(io.BytesIO(members[f"{key}.jpg"])).size == (64, 64)
            samples += 1
    assert samples == summary.successes


def test_dead_and_corrupt_urls_are_recorded_not_fatal(small_world, world_download):
    out, summary = world_download
    served = {row["uid"]: row["serve"] for row in load_truth(small_world, "web").to_pylist()}
    rows = pq.read_table(sorted(out.glob("*.parquet"))).to_pylist()
    assert sorted(row["uid"] for row in rows) == sorted(served), "every metadata row is accounted for"
    for row in rows:
        status, reason = EXPECTED_STATUS[served[row["uid"]]]
        assert row["status"] == status, row
        if reason:
            assert failure_reason(row["error_message"]) == reason, row
    expected = Counter(EXPECTED_STATUS[s][1] for s in served.values() if s != "ok")
    assert summary.failures_by_reason == dict(expected)
    assert summary.count == len(served)
    assert summary.successes == sum(s == "ok" for s in served.values())
    written = json.loads((out / SUMMARY_FILE).read_text())
    assert written["success_rate"] == pytest.approx(summary.success_rate, abs=1e-4)


def test_without_hash_check_corrupt_bodies_fail_to_decode(small_world, tmp_path):
    """The HTML page served as an image reaches img2dataset's decoder and is recorded as failed_to_resize."""
    from recap.ingest.download import download_world
    from recap.world.generate import WorldConfig, generate_world

    world = tmp_path / "world"
    serve_mix = {"ok": 0.5, "not_an_image": 0.5}
    generate_world(WorldConfig(seed=3, size=30, sft_size=1, eval_size=1, serve_mix=serve_mix), world, progress=False)
    config = DownloadConfig(
        metadata=str(world / "web" / "metadata"),
        out=str(tmp_path / "shards"),
        image_size=64,
        timeout=2,
        verify_hash=False,
        processes=1,
        threads=8,
    )
    summary = download_world(world, "web", config)
    served = Counter(row["serve"] for row in load_truth(world, "web").to_pylist())
    assert summary.failed_to_resize == served["not_an_image"] > 0
    assert summary.successes == served["ok"]


def test_metadata_checks_name_file_and_fix(tmp_path):
    import pyarrow as pa

    folder = tmp_path / "meta"
    folder.mkdir()
    pq.write_table(pa.table({"uid": ["a"], "link": ["http://x/y.jpg"], "text": ["t"]}), folder / "00000.parquet")
    with pytest.raises(RecapError, match=r"00000\.parquet has no column 'url' .*--url-col"):
        check_metadata(DownloadConfig(metadata=str(folder), out=str(tmp_path / "o")))
    assert check_metadata(DownloadConfig(metadata=str(folder), out=str(tmp_path / "o"), url_column="link")) == ["uid"]
    with pytest.raises(RecapError, match="does not exist"):
        check_metadata(DownloadConfig(metadata=str(tmp_path / "missing"), out=str(tmp_path / "o")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecapError, match="no .parquet files"):
        check_metadata(DownloadConfig(metadata=str(tmp_path / "empty"), out=str(tmp_path / "o")))
    (folder / "00001.parquet").write_text("not parquet")
    with pytest.raises(RecapError, match=r"00001\.parquet is not a readable Parquet file"):
        check_metadata(DownloadConfig(metadata=str(folder), out=str(tmp_path / "o"), url_column="link"))


@pytest.mark.parametrize(
    "message, reason",
    [
        ("HTTP Error 404: Not Found", "http_404"),
        ("<urlopen error timed out>", "timeout"),
        ("timed out", "timeout"),
        ("hash mismatch", "hash_mismatch"),
        ("<urlopen error [Errno 111] Connection refused>", "unreachable"),
        ("something new", "other"),
    ],
)
def test_failure_reasons(message, reason):
    assert failure_reason(message) == reason

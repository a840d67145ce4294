"""The recaption job end to end on world shards, with the shipped tiny captioner, locally and on Ray."""

import json
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from recap.errors import RecapError
from recap.jobs.caption import CaptionJobConfig, run_caption_job
from recap.world.generate import load_scenes
from recap.world.quality import score_captions

from ..job_helpers import kill_then_resume
from ..shard_factory import WARNINGS, bad_input_shard, cut_record, cut_shard, reshard, tar_keys

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "recap_datacomp.py"


def _rows(output):
    return ds.dataset(str(output), format="parquet").to_table().to_pylist()


def test_local_executor_end_to_end(small_world, world_download, tmp_path):
    shards, _ = world_download
    config = CaptionJobConfig(
        input=[str(shards)], output=str(tmp_path / "captions"), executor="local", captioner={"batch_size": 32}
    )
    summary = run_caption_job(config, progress=False)
    rows = _rows(tmp_path / "captions")
    assert {(Path(r["source_shard"]).stem, r["key"]) for r in rows} == tar_keys(shards)
    assert len(rows) == summary["rows"] == summary["rows_ok"] + summary["rows_failed"]
    tokens = sum(r["output_tokens"] or 0 for r in rows)
    assert summary["output_tokens_per_s"] * summary["seconds"] == pytest.approx(tokens, rel=0.01)
    scenes = load_scenes(small_world, "web")
    quality = score_captions([r["re_caption"] for r in rows], [scenes[r["uid"]] for r in rows]).summary()
    assert quality["object_precision"] > 0.9 and quality["object_recall"] > 0.9
    manifest = json.loads((tmp_path / "captions" / "_manifests" / f"{summary['run_id']}.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["captioner"]["prompt_text"].startswith("Please generate a detailed caption")
    assert manifest["captioner"]["generation"]["max_new_tokens"] == 128
    with pytest.raises(RecapError, match="--resume"):
        run_caption_job(config, progress=False)
    again = run_caption_job(CaptionJobConfig(**{**config.__dict__, "resume": True}), progress=False)
    assert again["shards_written"] == 0 and again["shards_skipped"] == summary["shards_written"]


def test_bad_input_matrix_on_ray(ray_cluster, tmp_path):
    """Every kind of broken sample, and a tar cut short with img2dataset's index beside it: one row per sample,
    in the shard's row count, so the markers and --resume hold."""
    (tmp_path / "in").mkdir()
    expected = bad_input_shard(tmp_path / "in" / "00000.tar")
    cut = cut_shard(tmp_path / "in" / "00001.tar")
    config = CaptionJobConfig(
        input=[str(tmp_path / "in")],
        output=str(tmp_path / "out"),
        executor="ray",
        cpus_per_actor=0.5,
        decode_cpus=0.5,
        max_pixels=50_000,
        captioner={"batch_size": 8},
    )
    summary = run_caption_job(config, progress=False)
    rows = {row["key"]: row for row in pq.read_table(tmp_path / "out" / "00000.parquet").to_pylist()}
    assert set(rows) == set(expected)
    for key, (name, error) in expected.items():
        if error is None:
            assert rows[key]["status"] == "ok" and rows[key]["re_caption"], name
        else:
            assert rows[key]["status"] == "bad_input" and error in rows[key]["error"], name
        alt_text, warning = WARNINGS.get(name, (rows[key]["org_caption"], None))
        assert (rows[key]["org_caption"], rows[key]["input_warning"]) == (alt_text, warning), name
    flagged = [row for row in rows.values() if row["input_warning"]]
    assert [(row["status"], expected[row["key"]][0]) for row in flagged] == [("ok", "bad_utf8")]
    assert flagged[0]["re_caption"] and flagged[0]["re_length"] > 0 and flagged[0]["org_caption"] == "caf\ufffd \ufffd"

    cut_rows = {row["key"]: row for row in pq.read_table(tmp_path / "out" / "00001.parquet").to_pylist()}
    assert set(cut_rows) == set(cut)  # the parquet's 7 successes and the key only the tar holds
    for key, (kind, error) in cut.items():
        row = cut_rows[key]
        if error is None:
            assert row["status"] == "ok" and row["re_caption"], kind
        else:
            assert row["status"] == "bad_input" and error in row["error"] and row["re_caption"] is None, kind
        if kind == "lost":
            record = cut_record(key, "success")
            assert (row["uid"], row["url"], row["org_caption"]) == (record["uid"], record["url"], record["caption"])
    lost = sorted(key for key, row in cut_rows.items() if row["error"] and "missing from the tar" in row["error"])
    assert lost == [f"{index:09d}" for index in (5, 6, 7)]
    marker = json.loads((tmp_path / "out" / "_done" / "00001.json").read_text())
    assert (marker["rows"], marker["status"]) == (8, {"ok": 4, "bad_input": 4})

    assert summary["rows"] == len(expected) + len(cut) == summary["rows_ok"] + summary["rows_failed"]
    assert summary["rows_failed"] == 11 + 4 and summary["shards_written"] == 2
    # time per stage: worker seconds summed over Ray's workers, plus the wall time
    assert {"read", "decode", "caption", "wall"} <= set(summary["stage_seconds"])
    assert all(seconds > 0 for seconds in summary["stage_seconds"].values())
    again = run_caption_job(CaptionJobConfig(**{**config.__dict__, "resume": True}), progress=False)
    assert (again["shards_written"], again["shards_skipped"]) == (0, 2)


def _driver_arguments(shards, output, address):
    return [
        "--input",
        str(shards),
        "--output",
        str(output),
        "--executor",
        "ray",
        "--ray-address",
        address,
        "--cpus-per-actor",
        "0.5",
        "--batch-size",
        "8",
        "--resume",
        "--quiet",
    ]


@pytest.mark.parametrize("point", ["after-marker", "before-move"])
def test_resume_after_sigkill_gives_every_key_once(ray_cluster, world_download, tmp_path, point):
    source, _ = world_download
    shards = tmp_path / "shards"
    total = reshard(source, shards, samples_per_shard=12)
    output = tmp_path / "captions"
    summary = kill_then_resume(PIPELINE, _driver_arguments(shards, output, ray_cluster), output, point)
    assert summary["shards_skipped"] == 3 and summary["shards_written"] == total - 3
    assert not list(output.glob(".*"))  # the stale temporary is gone
    rows = _rows(output)
    keys = [(Path(r["source_shard"]).stem, r["key"]) for r in rows]
    assert len(keys) == len(set(keys)) and set(keys) == tar_keys(shards)

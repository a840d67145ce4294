"""The scoring job end to end: world shards with their caption tables, scored by the shipped reference CLIP."""

from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from recap.errors import RecapError
from recap.jobs.score import ScoreJobConfig, run_score_job
from recap.schema import CAPTION_TABLE_SCHEMA, SCORED_TABLE, validate_table

from ..job_helpers import kill_then_resume
from ..shard_factory import tar_keys

PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "score_datacomp.py"


def _rows(folder) -> list[dict]:
    return ds.dataset(str(folder), format="parquet").to_table().to_pylist()


def test_scores_on_ray_keep_every_caption_row_and_rank_wrong_alt_text_low(
    small_world, captioned_shards, ray_cluster, tmp_path
):
    shards, captions = captioned_shards
    config = ScoreJobConfig(
        input=[str(shards)],
        captions=str(captions),
        output=str(tmp_path / "scored"),
        executor="ray",
        cpus_per_actor=0.5,
        decode_cpus=0.5,
        batch_size=32,
    )
    summary = run_score_job(config, progress=False)
    for path in sorted((tmp_path / "scored").glob("*.parquet")):
        scored = pq.read_table(path)
        validate_table(scored, str(path), SCORED_TABLE)
        caption_table = pq.read_table(captions / path.name)
        # the caption table, unchanged apart from the two scores, in the same order
        untouched = [name for name in CAPTION_TABLE_SCHEMA.names if not name.endswith("_clip_score")]
        assert scored.select(untouched).equals(caption_table.select(untouched))
    rows = _rows(tmp_path / "scored")
    assert len(rows) == summary["rows"] == len(tar_keys(shards))
    ok = [row for row in rows if row["status"] == "ok"]
    assert ok and all(0.0 <= row["re_clip_score"] <= 100.0 and 0.0 <= row["org_clip_score"] <= 100.0 for row in ok)
    assert all(row["clip_model"] and row["original_width"] for row in ok)
    assert summary["re_caption_truncated_total"] == sum(bool(row["re_caption_truncated"]) for row in rows)
    assert summary["org_caption_truncated_total"] == 0  # alt-texts are short

    # the world knows which alt-texts are wrong: the scorer must see it
    kinds = pq.read_table(small_world / "web" / "truth.parquet", columns=["uid", "alt_kind"]).to_pylist()
    kind = {row["uid"]: row["alt_kind"] for row in kinds}
    by_kind: dict[str, list[float]] = {}
    for row in ok:
        if row["org_clip_score"] is not None:
            by_kind.setdefault(kind[row["uid"]], []).append(row["org_clip_score"])
    bad = by_kind.get("wrong", []) + by_kind.get("generic", [])
    assert len(bad) >= 5 and len(by_kind["descriptive"]) >= 5
    assert np.mean(bad) < np.mean(by_kind["descriptive"]) - 5


def test_a_shard_without_caption_table_is_named(captioned_shards, tmp_path):
    shards, _ = captioned_shards
    config = ScoreJobConfig(
        input=[str(shards)], captions=str(tmp_path / "nothing"), output=str(tmp_path / "out"), executor="local"
    )
    with pytest.raises(RecapError, match=r"no caption table in .*nothing.*00000\.parquet.*recap caption"):
        run_score_job(config, progress=False)


def test_resume_after_sigkill_scores_every_row_once(captioned_shards, ray_cluster, tmp_path):
    """The sink is the recaption job's (the before-move point is tested there); the driver dies after a marker."""
    shards, captions = captioned_shards
    output = tmp_path / "scored"
    arguments = [
        *("--input", str(shards), "--captions", str(captions), "--output", str(output)),
        *("--executor", "ray", "--ray-address", ray_cluster, "--cpus-per-actor", "0.5", "--batch-size", "16"),
        *("--resume", "--quiet"),
    ]
    summary = kill_then_resume(PIPELINE, arguments, output, "after-marker")
    assert summary["shards_skipped"] == 3
    rows = _rows(output)
    keys = [(Path(row["source_shard"]).stem, row["key"]) for row in rows]
    assert len(keys) == len(set(keys)) and set(keys) == tar_keys(shards)
    assert all(row["re_clip_score"] is not None for row in rows if row["status"] == "ok" and row["re_caption"])

"""`recap eval-captions` and the table scorer, on tables whose right answers are known."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recap.caption_quality import score_table
from recap.cli import main
from recap.errors import RecapError
from recap.world.generate import load_truth


def _table(world, tmp_path, captions):
    truth = load_truth(world, "eval").to_pylist()
    table = pa.table(
        {
            "uid": [row["uid"] for row in truth],
            "re_caption": captions(truth),
            "org_caption": [row["short_caption"] for row in truth],
        }
    )
    path = tmp_path / "captions.parquet"
    pq.write_table(table, path)
    return path


def test_perfect_captions_score_one_and_nulls_are_skipped(small_world, tmp_path):
    path = _table(small_world, tmp_path, lambda truth: [None] + [row["caption"] for row in truth[1:]])
    result = score_table(path, small_world)
    recaption = result["summaries"]["re_caption"]
    assert recaption["object_precision"] == recaption["object_recall"] == 1.0
    assert result["skipped_null"] == 1 and result["unknown_uid"] == 0
    short = result["summaries"]["org_caption"]
    assert short["object_precision"] == 1.0 and short["object_recall"] == 0.0  # no positions in short captions


def test_cli_prints_both_columns(small_world, tmp_path, capsys):
    path = _table(small_world, tmp_path, lambda truth: [row["short_caption"] for row in truth])
    assert main(["eval-captions", "--table", str(path), "--world", str(small_world)]) == 0
    out = capsys.readouterr().out
    assert "re_caption" in out and "org_caption" in out and "object precision" in out


def test_foreign_table_and_missing_column(small_world, tmp_path):
    path = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"uid": ["0" * 32], "re_caption": ["a red circle"]}), path)
    with pytest.raises(RecapError, match="belong to the world"):
        score_table(path, small_world)
    with pytest.raises(RecapError, match=r"no column\(s\) \['new_caption'\]"):
        score_table(path, small_world, column="new_caption")

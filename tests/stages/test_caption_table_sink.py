"""The caption table sink: complete shards only, exactly once, atomically, with markers."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from recap.errors import RecapError
from recap.pipeline.stage import object_array
from recap.schema import CAPTION_TABLE_SCHEMA
from recap.stages.caption_table_sink import CAPTIONED_COLUMNS, CaptionTableSink


def _batch(shard, keys, total, status="ok", warning=None):
    n = len(keys)
    columns = {
        "key": object_array(keys),
        "source_shard": object_array([f"/data/{shard}.tar"] * n),
        "shard_total": np.full(n, total),
        "uid": object_array([f"{int(k):032x}" for k in keys]),
        "url": object_array([f"http://x/{k}" for k in keys]),
        "org_caption": object_array(["a red circle"] * n),
        "sha256": object_array([None] * n),
        "status": object_array([status] * n),
        "error": object_array([None if status == "ok" else "broken"] * n),
        "input_warning": object_array([warning] * n),
        "re_caption": object_array(["A large red circle is in the top left." if status == "ok" else None] * n),
        "output_tokens": object_array([9 if status == "ok" else None] * n),
        "finish_reason": object_array(["stop" if status == "ok" else None] * n),
    }
    return {name: columns[name] for name in (*CAPTIONED_COLUMNS, "shard_total")}


def _writer(tmp_path):
    return CaptionTableSink(output=str(tmp_path / "out"), run_id="run-1", captioner_model="tiny", prompt_id="p")


def test_shard_is_written_only_when_complete(tmp_path):
    writer = _writer(tmp_path)
    assert writer.write(_batch("00000", ["1", "2"], total=3, warning="the caption (.txt) is not valid UTF-8")) == []
    assert not (tmp_path / "out" / "00000.parquet").exists()
    assert writer.incomplete() == {"00000": (2, 3)}
    assert writer.write(_batch("00000", ["3"], total=3, status="bad_input")) == ["00000"]
    table = pq.read_table(tmp_path / "out" / "00000.parquet")
    assert table.schema.equals(CAPTION_TABLE_SCHEMA, check_metadata=False)
    rows = table.to_pylist()
    assert [row["key"] for row in rows] == ["1", "2", "3"]
    assert rows[0]["re_length"] == 9 and rows[0]["org_length"] == 3 and rows[0]["run_id"] == "run-1"
    assert rows[2]["status"] == "bad_input" and rows[2]["captioner_model"] is None
    assert [row["input_warning"] for row in rows] == ["the caption (.txt) is not valid UTF-8"] * 2 + [None]
    marker = json.loads((tmp_path / "out" / "_done" / "00000.json").read_text())
    assert marker["rows"] == 3 and marker["status"] == {"ok": 2, "bad_input": 1}
    assert marker["output_tokens"] == 18  # the run summary's tokens/s adds these up without reading tables back
    assert writer.completed_units() == {"00000"}
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_duplicates_are_dropped(tmp_path):
    writer = _writer(tmp_path)
    writer.write(_batch("00000", ["1", "2"], total=3))
    writer.write(_batch("00000", ["2"], total=3))  # a retried block
    writer.write(_batch("00000", ["3"], total=3))
    writer.write(_batch("00000", ["3"], total=3))  # after the shard was written
    assert writer.duplicates == 2
    assert pq.read_table(tmp_path / "out" / "00000.parquet").num_rows == 3


def test_table_without_marker_is_not_complete(tmp_path):
    writer = _writer(tmp_path)
    writer.write(_batch("00000", ["1"], total=1))
    (tmp_path / "out" / "_done" / "00000.json").unlink()
    assert writer.completed_units() == set()
    (tmp_path / "out" / ".00001.parquet.tmp-dead").write_bytes(b"partial")
    assert writer.remove_stale_temporaries() == 1


def test_unwritable_output(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecapError, match="cannot write to output"):
        CaptionTableSink(output=str(tmp_path / "file" / "out"), run_id="r", captioner_model="m", prompt_id="p")

"""A pipeline is [source, *stages, sink]; its running schema is checked on construction, before any cluster."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest

from recap.errors import RecapError
from recap.pipeline.pipeline import Pipeline
from recap.pipeline.stage import Resources, Stage, apply_stage
from recap.stages.decode import DecodeImages
from recap.stages.parquet_sink import ParquetShardSink
from recap.stages.webdataset_reader import WebDatasetSource

from ..shard_factory import bad_input_shard


@dataclass(kw_only=True)
class Shout(Stage):
    """Upper-cases the caption; needs `org_caption`, adds `loud`, drops `pixels`."""

    name: ClassVar[str] = "shout"
    batch_size: ClassVar[int | None] = 4
    input_columns: ClassVar[tuple[str, ...]] = ("org_caption",)
    added_schema: ClassVar[pa.Schema] = pa.schema([("loud", pa.string())])
    dropped_columns: ClassVar[tuple[str, ...]] = ("pixels",)

    def __call__(self, batch):
        return {"loud": np.array([None if c is None else c.upper() for c in batch["org_caption"]], dtype=object)}


@pytest.fixture
def parts(tmp_path):
    (tmp_path / "in").mkdir()
    bad_input_shard(tmp_path / "in" / "00000.tar")
    source = WebDatasetSource(inputs=[str(tmp_path / "in")])
    sink_schema = pa.schema([("key", pa.string()), ("source_shard", pa.string()), ("loud", pa.string())])
    sink = ParquetShardSink(output=str(tmp_path / "out"), schema=sink_schema)
    return source, sink


def test_running_schema_follows_adds_and_drops(parts):
    source, sink = parts
    pipeline = Pipeline([source, DecodeImages(image_size=32), Shout(), sink])
    after_decode, after_shout = pipeline.schemas[1], pipeline.schemas[2]
    assert "image" not in after_decode.names and after_decode.field("pixels").type == pa.binary()
    assert "pixels" not in after_shout.names and after_shout.field("loud").type == pa.string()
    assert after_shout.names[:3] == ["key", "source_shard", "shard_total"]  # the source's unit columns travel on


def test_a_missing_column_is_named_before_anything_runs(parts):
    source, sink = parts
    with pytest.raises(RecapError, match=r"stage 'shout' needs columns \['org_caption'\]"):
        Pipeline([source, Shout(), sink])  # no decode stage: nothing makes org_caption
    with pytest.raises(RecapError, match=r"sink 'write' needs columns \['loud'\]"):
        Pipeline([source, DecodeImages(image_size=32), sink])
    with pytest.raises(RecapError, match=r"\[source, \*stages, sink\]"):
        Pipeline([DecodeImages(image_size=32), sink])


def test_with_overrides_one_instance_only():
    stage = Shout()
    wider = stage.with_(resources=Resources(cpus=0.5, gpus=1), batch_size=16, name="shout-wide")
    assert (wider.resources, wider.batch_size, wider.name) == (Resources(cpus=0.5, gpus=1), 16, "shout-wide")
    assert (stage.resources, stage.batch_size, stage.name) == (Resources(), 4, "shout")
    assert Shout().batch_size == 4
    with pytest.raises(ValueError, match="batch_size"):
        stage.with_(batch_size=0)


def test_apply_stage_passes_other_columns_through():
    batch = {"key": np.array(["1", "2"], dtype=object), "org_caption": np.array(["a", None], dtype=object)}
    batch["pixels"] = np.array([b"x", b"y"], dtype=object)
    out = apply_stage(Shout(), batch)
    assert list(out) == ["key", "org_caption", "loud"] and list(out["loud"]) == ["A", None]

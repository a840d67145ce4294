"""Write one Parquet table per read unit (shard), exactly once, on any fsspec filesystem.

Rows stream in from the pipeline in any order. The sink buffers them per unit and, when a unit has all its
rows (the source's unit-size column says how many), writes `{output}/{unit}.parquet` under a temporary
dot-name, moves it into place, then writes the completion marker `{output}/_done/{unit}.json`. A crash
therefore leaves no partial table visible, and a rerun skips exactly the units that have a marker. A row
whose key was already seen for its unit is dropped and counted (a retried task cannot duplicate rows).
"""

from __future__ import annotations

import json
import math
import posixpath
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recap.errors import RecapError
from recap.pipeline.sink import Sink
from recap.pipeline.source import UnitColumns
from recap.pipeline.stage import Batch, batch_length

DONE_FOLDER = "_done"
MANIFEST_FOLDER = "_manifests"  # "_" and "." names are skipped by pyarrow.dataset, Spark and HF loaders


def unit_name_of(uri: str) -> str:
    """'s3://b/shards/00042.tar' -> '00042': the name a unit's outputs take."""
    base = posixpath.basename(uri)
    return base[: -len(".tar")] if base.endswith(".tar") else base


def plain_value(value: Any) -> Any:
    """A value as Arrow takes it: numpy scalars and arrays (a list column under Ray) as Python ones, and NaN from a
    numpy float column of nulls as None."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@dataclass(kw_only=True)
class ParquetShardSink(Sink):
    """One table of `schema`'s columns per unit. Markers count rows per `count_column` value (when the schema
    has it) and hold the totals of `sum_columns` (the run summary adds them up, and gives `rate_columns` per
    second too). Subclasses may derive columns in `row` and the whole table in `table`."""

    output: str
    schema: pa.Schema
    run_id: str = ""
    storage_options: dict | None = None
    count_column: str = "status"
    sum_columns: tuple[str, ...] = ()
    rate_columns: tuple[str, ...] = ()  # sums the run summary also gives per second
    duplicates: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.output = self.output.rstrip("/")
        self.input_columns = tuple(self.schema.names)
        self.fs, self.root = fsspec.core.url_to_fs(self.output, **(self.storage_options or {}))
        self._buffers: dict[str, dict[str, dict]] = {}
        self._totals: dict[str, int] = {}
        self.written: dict[str, dict] = {}
        self.columns = UnitColumns(unit="source_shard", size="shard_total", key="key")
        try:
            self.fs.makedirs(self._path(DONE_FOLDER), exist_ok=True)
            self.fs.makedirs(self._path(MANIFEST_FOLDER), exist_ok=True)
        except OSError as error:
            raise RecapError(f"cannot write to output {self.output}: {error}") from None

    def open(self, columns: UnitColumns) -> None:
        self.columns = columns

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def completed_units(self) -> set[str]:
        markers = self.fs.glob(self._path(DONE_FOLDER, "*.json"))
        names = {posixpath.basename(m)[: -len(".json")] for m in markers}
        return {name for name in names if self.fs.exists(self._path(f"{name}.parquet"))}

    def remove_stale_temporaries(self) -> int:
        """Delete tables a crashed run left under their temporary names; returns how many."""
        stale = self.fs.glob(self._path(".*.parquet.tmp-*"))
        for path in stale:
            self.fs.rm(path)
        return len(stale)

    def row(self, batch: Batch, index: int) -> dict:
        """The output row for `batch[index]`: by default, the schema's columns as they are."""
        return {name: plain_value(batch[name][index]) for name in self.schema.names}

    def table(self, rows: list[dict], unit: str) -> pa.Table:
        """One unit's rows (sorted by key) as a table of `schema`."""
        try:
            return pa.Table.from_pylist(rows, schema=self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise RecapError(f"unit {unit}: rows do not fit the sink's schema: {error}") from None

    def write(self, batch: Batch) -> list[str]:
        finished = []
        units, sizes, keys = (batch[name] for name in (self.columns.unit, self.columns.size, self.columns.key))
        for index in range(batch_length(batch)):
            name = unit_name_of(str(units[index]))
            key = str(keys[index])
            if name in self.written or key in self._buffers.get(name, {}):
                self.duplicates += 1
                continue
            buffer = self._buffers.setdefault(name, {})
            self._totals[name] = int(sizes[index])
            buffer[key] = self.row(batch, index)
            if len(buffer) == self._totals[name]:
                self._write_shard(name)
                finished.append(name)
        return finished

    def _write_shard(self, name: str) -> None:
        buffer = self._buffers.pop(name)
        rows = [buffer[key] for key in sorted(buffer)]
        table = self.table(rows, name)
        temporary = self._path(f".{name}.parquet.tmp-{uuid.uuid4().hex[:8]}")
        with self.fs.open(temporary, "wb") as handle:
            pq.write_table(table, handle)
        self.fs.mv(temporary, self._path(f"{name}.parquet"))
        marker: dict[str, Any] = {"shard": name, "rows": len(rows)}
        if self.count_column in self.schema.names:
            marker[self.count_column] = dict(Counter(row[self.count_column] for row in rows))
        for column in self.sum_columns:
            marker[column] = sum(row[column] or 0 for row in rows)
        marker.update(run_id=self.run_id, time=time.time())
        with self.fs.open(self._path(DONE_FOLDER, f"{name}.json"), "w") as handle:
            handle.write(json.dumps(marker))
        self.written[name] = marker

    def incomplete(self) -> dict[str, tuple[int, int]]:
        return {name: (len(rows), self._totals[name]) for name, rows in self._buffers.items()}

    def markers(self) -> dict[str, dict]:
        return dict(self.written)

    def write_json(self, relative: str, payload: dict) -> None:
        """Write a JSON file under the output (temporary name, then move)."""
        temporary = self._path(f".{posixpath.basename(relative)}.tmp-{uuid.uuid4().hex[:8]}")
        with self.fs.open(temporary, "w") as handle:
            handle.write(json.dumps(payload, indent=2, default=str) + "\n")
        self.fs.mv(temporary, self._path(relative))

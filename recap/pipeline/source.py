"""The contract of a pipeline's first stage: it lists read units (shards) and reads each one into batches.

A source also names the columns that tie a row to its unit, so that sinks and progress bars can follow
units without knowing anything else about the reader:

    unit_column       which unit a row came from (a shard's URI)
    unit_size_column  how many rows that unit has (a sink knows when a unit is complete; a bar, its total),
                      counting any row the source adds for a record the unit lost (a sample that a download's
                      index lists but its tar no longer holds), so such a row is written, not waited for
    key_column        the row's id within its unit (a sink drops a row it has already seen)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa

from recap.pipeline.stage import Batch, Stage


@dataclass(frozen=True)
class Shard:
    """One read unit: its URI and the name its outputs take (`00042` for `.../00042.tar`)."""

    uri: str
    name: str


@dataclass(frozen=True)
class UnitColumns:
    """The names of a source's unit, unit-size and key columns."""

    unit: str
    size: str
    key: str


class Source(Stage):
    """Base class of sources. `batch_size` is rows per read batch; `resources` are per read task."""

    name: ClassVar[str] = "read"
    batch_size: ClassVar[int | None] = 256
    unit_column: ClassVar[str] = "source_shard"
    unit_size_column: ClassVar[str] = "shard_total"
    key_column: ClassVar[str] = "key"

    @property
    def output_schema(self) -> pa.Schema:
        """Every column the source yields, with its Arrow type (the unit, size and key columns among them)."""
        return self.added_schema

    @property
    def unit_columns(self) -> UnitColumns:
        return UnitColumns(unit=self.unit_column, size=self.unit_size_column, key=self.key_column)

    def units(self) -> list[Shard]:
        """The read units, in a stable order, with unique names."""
        raise NotImplementedError

    def read(self, unit: Shard) -> Iterator[Batch]:
        """Yield the rows of one unit in batches of at most `batch_size` rows; every row must carry the unit's
        URI, its size and a key unique within the unit."""
        raise NotImplementedError

    def __call__(self, batch: Batch) -> Batch:
        raise TypeError(f"source {self.name!r} is read with read(unit), not called on a batch")

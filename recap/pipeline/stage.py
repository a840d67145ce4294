"""A stage turns a columnar batch (`dict[str, np.ndarray]`) into a batch with the same rows.

Stages are plain, picklable classes that work without a cluster: `__init__` is cheap, `setup()` loads
models once per worker, `__call__` does the work. A stage that overrides `setup` runs in an actor pool
under Ray; one that does not runs in tasks.

A stage's metadata are plain class attributes: `name`, `resources`, `batch_size`, and its columns, declared
as what it needs (`input_columns`), what it adds or rewrites (`added_schema`, with Arrow types) and what it
drops (`dropped_columns`). `stage.with_(...)` overrides the first three on one instance (as NeMo Curator's
`with_`). `__call__` returns only the columns it adds or rewrites; `apply_stage` passes the others through,
so a stage never needs to know what else travels with its rows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from recap.errors import RecapError

Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs. Fractions are allowed (0.5 CPU leaves room for readers)."""

    cpus: float = 1.0
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.cpus < 0 or self.gpus < 0:
            raise ValueError(f"resources must be >= 0, got {self.cpus} CPU, {self.gpus} GPU")


class Stage:
    """Base class. Subclasses are dataclasses whose fields are their config."""

    name: ClassVar[str] = "stage"
    resources: ClassVar[Resources] = Resources()
    batch_size: ClassVar[int | None] = None  # rows per call; None: whatever arrives
    input_columns: ClassVar[tuple[str, ...]] = ()
    added_schema: ClassVar[pa.Schema] = pa.schema([])
    dropped_columns: ClassVar[tuple[str, ...]] = ()

    def with_(
        self, *, name: str | None = None, resources: Resources | None = None, batch_size: int | None = None
    ) -> Stage:
        """A copy of this stage with its name, resources or batch size overridden (the others kept)."""
        clone = copy.copy(self)
        for attribute, value in (("name", name), ("resources", resources), ("batch_size", batch_size)):
            if value is not None:
                object.__setattr__(clone, attribute, value)
        if clone.batch_size is not None and clone.batch_size < 1:
            raise ValueError(f"stage {clone.name!r}: batch_size must be >= 1, got {clone.batch_size}")
        return clone

    @property
    def added_columns(self) -> tuple[str, ...]:
        return tuple(self.added_schema.names)

    def setup(self) -> None:
        """Load what the stage needs once per worker (models); the default needs nothing."""

    @property
    def needs_setup(self) -> bool:
        return type(self).setup is not Stage.setup

    def __call__(self, batch: Batch) -> Batch:
        raise NotImplementedError


def evolve_schema(schema: pa.Schema, stage: Stage) -> pa.Schema:
    """The schema after `stage`: inputs checked, dropped columns removed, added columns replaced or appended."""
    missing = sorted(set(stage.input_columns) - set(schema.names))
    if missing:
        raise RecapError(
            f"stage {stage.name!r} needs columns {missing} that no earlier stage produces "
            f"(available: {', '.join(schema.names)})"
        )
    fields = {field.name: field for field in schema if field.name not in stage.dropped_columns}
    for field in stage.added_schema:
        fields[field.name] = field
    return pa.schema(list(fields.values()))


def apply_stage(stage: Stage, batch: Batch) -> Batch:
    """Run `stage` on `batch`: its added columns replace or extend the batch's, its dropped ones go."""
    added = stage(batch)
    rows, produced = batch_length(batch), batch_length(added)
    if added and produced != rows:
        raise RecapError(f"stage {stage.name!r} returned {produced} rows for {rows}; stages keep every row")
    missing = sorted(set(stage.added_columns) - set(added))
    if missing:
        raise RecapError(f"stage {stage.name!r} did not return its declared columns {missing}")
    out = {name: values for name, values in batch.items() if name not in stage.dropped_columns}
    out.update(added)
    return out


def batch_length(batch: Batch) -> int:
    return len(next(iter(batch.values()))) if batch else 0


def slice_batch(batch: Batch, start: int, stop: int) -> Batch:
    return {name: values[start:stop] for name, values in batch.items()}


def concat_batches(batches: list[Batch]) -> Batch:
    if len(batches) == 1:
        return batches[0]
    return {name: np.concatenate([batch[name] for batch in batches]) for name in batches[0]}


def to_arrow(batch: Batch, schema: pa.Schema) -> pa.Table:
    """A batch as an Arrow table with exactly `schema`'s types, so an all-null column keeps its type (NaNs in a
    non-float column are its nulls)."""
    columns = {}
    for field in schema:
        values = batch[field.name]
        items = values.tolist() if isinstance(values, np.ndarray) else list(values)
        if not pa.types.is_floating(field.type):  # a column of nulls can come back from Ray as float NaNs
            items = [None if isinstance(item, float) and item != item else item for item in items]
        columns[field.name] = pa.array(items, field.type)
    return pa.Table.from_pydict(columns, schema=schema)


def object_array(values: list) -> np.ndarray:
    """A 1-D object array, even when every value is a list or a tuple."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array

"""A stage turns a columnar batch (`dict[str, np.ndarray]`) into a batch.

Stages are plain, picklable classes that work without a cluster: `__init__` is cheap, `setup()` loads
models once per worker, `__call__` does the work. A stage that overrides `setup` runs in an actor pool
under Ray; one that does not runs in tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

Batch = dict[str, np.ndarray]


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs. Fractions are allowed (0.5 CPU leaves room for readers)."""

    cpus: float = 1.0
    gpus: float = 0.0


class Stage:
    """Base class. Subclasses are dataclasses whose fields are their config."""

    name: ClassVar[str] = "stage"
    input_columns: ClassVar[tuple[str, ...]] = ()
    output_schema: ClassVar[pa.Schema] = pa.schema([])  # the columns a stage emits, with their Arrow types
    dropped_columns: ClassVar[tuple[str, ...]] = ()

    @property
    def output_columns(self) -> tuple[str, ...]:
        return tuple(self.output_schema.names)

    @property
    def resources(self) -> Resources:
        return Resources()

    @property
    def batch_size(self) -> int | None:
        return None

    def setup(self) -> None:
        """Load what the stage needs once per worker (models); the default needs nothing."""

    @property
    def needs_setup(self) -> bool:
        return type(self).setup is not Stage.setup

    def __call__(self, batch: Batch) -> Batch:
        raise NotImplementedError


def batch_length(batch: Batch) -> int:
    return len(next(iter(batch.values()))) if batch else 0


def to_arrow(batch: Batch, schema: pa.Schema) -> pa.Table:
    """A batch as an Arrow table with exactly `schema`'s types, so an all-null column keeps its type."""
    columns = {}
    for field in schema:
        values = batch[field.name]
        columns[field.name] = pa.array(values.tolist() if isinstance(values, np.ndarray) else list(values), field.type)
    return pa.Table.from_pydict(columns, schema=schema)


def object_array(values: list) -> np.ndarray:
    """A 1-D object array, even when every value is a list or a tuple."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array

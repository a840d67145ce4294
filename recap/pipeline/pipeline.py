"""A pipeline is `[source, *stages, sink]`, checked before anything runs.

The running schema starts from the source's columns; each stage needs its input columns, drops some and
adds some; the sink needs its own inputs and the source's unit, size and key columns. `Pipeline` works the
schemas out on construction and raises `RecapError` naming the stage and the missing columns, so a
misassembled job fails before a cluster starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import pyarrow as pa

from recap.errors import RecapError
from recap.pipeline.sink import Sink
from recap.pipeline.source import Shard, Source
from recap.pipeline.stage import Stage, evolve_schema


@dataclass
class Pipeline:
    """`stages` is the whole list: a `Source` first, a `Sink` last, plain stages between."""

    stages: list[Stage]
    schemas: list[pa.Schema] = field(init=False, repr=False)  # the schema after the source and each stage

    def __post_init__(self) -> None:
        if len(self.stages) < 2 or not isinstance(self.stages[0], Source) or not isinstance(self.stages[-1], Sink):
            names = [type(stage).__name__ for stage in self.stages]
            raise RecapError(f"a pipeline is [source, *stages, sink]; got {names}")
        if any(isinstance(stage, Source | Sink) for stage in self.transforms):
            raise RecapError("only the first stage may be a source and only the last a sink")
        self.schemas = self._check_schemas()
        self.sink.open(self.source.unit_columns)

    @property
    def source(self) -> Source:
        return self.stages[0]  # type: ignore[return-value]

    @property
    def sink(self) -> Sink:
        return self.stages[-1]  # type: ignore[return-value]

    @property
    def transforms(self) -> list[Stage]:
        """The stages between the source and the sink."""
        return self.stages[1:-1]

    def _check_schemas(self) -> list[pa.Schema]:
        schema = self.source.output_schema
        unit_columns = {self.source.unit_column, self.source.unit_size_column, self.source.key_column}
        missing = sorted(unit_columns - set(schema.names))
        if missing:
            raise RecapError(f"source {self.source.name!r} does not yield its own unit columns {missing}")
        schemas = [schema]
        for stage in self.transforms:
            schema = evolve_schema(schema, stage)
            schemas.append(schema)
        missing = sorted((set(self.sink.input_columns) | unit_columns) - set(schema.names))
        if missing:
            raise RecapError(f"sink {self.sink.name!r} needs columns {missing} that the stages do not produce")
        return schemas

    def schema_after(self, stage: Stage) -> pa.Schema:
        """The columns (and types) of the batches `stage` emits."""
        for index, candidate in enumerate(self.stages[:-1]):
            if candidate is stage:
                return self.schemas[index]
        raise ValueError(f"stage {stage.name!r} is not in this pipeline")

    @cached_property
    def completed(self) -> set[str]:
        """Units the sink has already completed (an earlier run's); listed once per pipeline."""
        return self.sink.completed_units()

    @cached_property
    def pending(self) -> list[Shard]:
        """The source's units that are not completed yet: what an executor runs."""
        return [unit for unit in self.source.units() if unit.name not in self.completed]

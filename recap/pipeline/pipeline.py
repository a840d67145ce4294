"""A pipeline: shards to read, an ordered list of stages, and a writer; checked before anything runs."""

from __future__ import annotations

from dataclasses import dataclass

from recap.errors import RecapError
from recap.pipeline.stage import Stage
from recap.stages.caption import CAPTIONED_COLUMNS
from recap.stages.caption_table_writer import CaptionTableWriter
from recap.stages.webdataset_reader import READER_COLUMNS, Shard


@dataclass
class Pipeline:
    """Read `shards`, run `stages` in order, hand the result to `writer`."""

    shards: list[Shard]
    stages: list[Stage]
    writer: CaptionTableWriter
    rows_per_read_batch: int = 256
    storage_options: dict | None = None
    read_cpus: float = 1.0  # CPUs per read task (one per shard) under Ray

    def validate(self) -> None:
        """Every stage's input columns must be produced upstream, and the writer's by the last stage."""
        available = set(READER_COLUMNS)
        for stage in self.stages:
            missing = sorted(set(stage.input_columns) - available)
            if missing:
                raise RecapError(f"stage {stage.name!r} needs columns {missing} that no earlier stage produces")
            available = (available | set(stage.output_columns)) - set(stage.dropped_columns)
        missing = sorted(set(CAPTIONED_COLUMNS) - available)
        if missing:
            raise RecapError(f"the caption table writer needs columns {missing} that the stages do not produce")

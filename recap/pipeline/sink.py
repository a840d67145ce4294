"""The contract of a pipeline's last stage: it receives batches and owns completion.

A sink writes each read unit's rows once the unit is complete (under a temporary name, then moved into
place, then a completion marker), knows which units a previous run completed, and drops rows it has already
seen (a retried task can deliver a row twice). It learns which columns name the unit, its size and the row's
key from the source (`open`), so it needs no knowledge of the reader.
"""

from __future__ import annotations

from typing import ClassVar

from recap.pipeline.source import UnitColumns
from recap.pipeline.stage import Batch, Stage


class Sink(Stage):
    """Base class of sinks. Runs in the driver: `resources` and `batch_size` do not apply."""

    name: ClassVar[str] = "write"

    def open(self, columns: UnitColumns) -> None:
        """Called once before the first `write`, with the source's unit, size and key column names."""
        raise NotImplementedError

    def completed_units(self) -> set[str]:
        """Names of the units whose output and marker are both in place (from this run or an earlier one)."""
        raise NotImplementedError

    def write(self, batch: Batch) -> list[str]:
        """Take a batch of rows from any units; write every unit it completes. Returns their names."""
        raise NotImplementedError

    def incomplete(self) -> dict[str, tuple[int, int]]:
        """Units with rows still buffered: name -> (rows seen, rows expected)."""
        raise NotImplementedError

    def markers(self) -> dict[str, dict]:
        """The completion markers this sink wrote in this run, by unit name: each has at least `rows`."""
        raise NotImplementedError

    def __call__(self, batch: Batch) -> Batch:
        raise TypeError(f"sink {self.name!r} takes batches with write(batch)")

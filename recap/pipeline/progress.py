"""Progress in rows (images, not blocks) with rate and ETA, and per-stage time, shared by the executors."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from recap.console import progress_bar
from recap.pipeline.source import UnitColumns
from recap.pipeline.stage import Batch, batch_length

# Columns that carry each row's share of a stage's worker time from the workers to the driver. The Ray executor
# adds them; they are not part of any stage's schema, and sinks ignore them.
TIMING_PREFIX = "__seconds_"


def timing_column(stage: str) -> str:
    return f"{TIMING_PREFIX}{stage}"


class RowProgress:
    """A bar counted in rows. Units (shards) announce their size with every row (the source's unit-size column),
    so the total, and with it the ETA, is estimated from the units seen so far and becomes exact once every
    unit has been seen. Also sums the per-row stage times that workers attach to batches."""

    def __init__(
        self, units: int, columns: UnitColumns, *, enabled: bool = True, desc: str = "rows", unit: str = "img"
    ) -> None:
        self.units, self.columns = units, columns
        self.sizes: dict[str, int] = {}
        self.stage_seconds: dict[str, float] = defaultdict(float)
        self.rows = 0
        self.bar = progress_bar(
            total=None, unit=unit, desc=desc, disable=not enabled, smoothing=0.1, dynamic_ncols=True
        )

    def update(self, batch: Batch) -> None:
        count = batch_length(batch)
        for name, total in zip(batch[self.columns.unit], batch[self.columns.size], strict=True):
            if name not in self.sizes:
                self.sizes[name] = int(total)
        for column, values in batch.items():
            if column.startswith(TIMING_PREFIX):
                self.stage_seconds[column[len(TIMING_PREFIX) :]] += float(np.nansum(np.asarray(values, dtype=float)))
        if self.sizes:
            seen = sum(self.sizes.values())
            estimate = round(seen + seen / len(self.sizes) * max(0, self.units - len(self.sizes)))
            if estimate != self.bar.total:
                self.bar.total = estimate
                self.bar.refresh()
        self.rows += count
        self.bar.update(count)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

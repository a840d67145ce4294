"""Progress in images (not blocks) with rate and ETA, and per-stage time, shared by the executors."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from tqdm import tqdm

from recap.pipeline.stage import Batch, batch_length

# Columns that carry each row's share of a stage's worker time from the workers to the driver.
TIMING_PREFIX = "__seconds_"


def timing_column(stage: str) -> str:
    return f"{TIMING_PREFIX}{stage}"


class RowProgress:
    """A bar counted in images. Shards announce their size with their first row (`shard_total`), so the total,
    and with it the ETA, is estimated from the shards seen so far and becomes exact once every shard has been
    seen. Also sums the per-row stage times that workers attach to batches."""

    def __init__(self, shards: int, *, enabled: bool = True, desc: str = "captioning") -> None:
        self.shards = shards
        self.sizes: dict[str, int] = {}
        self.stage_seconds: dict[str, float] = defaultdict(float)
        self.rows = 0
        self.bar = tqdm(total=None, unit="img", desc=desc, disable=not enabled, smoothing=0.1, dynamic_ncols=True)

    def update(self, batch: Batch) -> None:
        count = batch_length(batch)
        for shard, total in zip(batch["source_shard"], batch["shard_total"], strict=True):
            if shard not in self.sizes:
                self.sizes[shard] = int(total)
        for column, values in batch.items():
            if column.startswith(TIMING_PREFIX):
                self.stage_seconds[column[len(TIMING_PREFIX) :]] += float(np.nansum(np.asarray(values, dtype=float)))
        if self.sizes:
            seen = sum(self.sizes.values())
            estimate = round(seen + seen / len(self.sizes) * max(0, self.shards - len(self.sizes)))
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

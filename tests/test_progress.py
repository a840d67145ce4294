"""The progress bar counts images and estimates the total (hence the ETA) from the shards seen so far."""

import numpy as np

from recap.pipeline.progress import RowProgress, timing_column
from recap.pipeline.source import UnitColumns


def _batch(shard, total, rows, seconds=0.5):
    return {
        "source_shard": np.array([shard] * rows, dtype=object),
        "shard_total": np.full(rows, total),
        timing_column("caption"): np.full(rows, seconds / rows),
    }


def test_total_is_estimated_then_exact():
    progress = RowProgress(4, UnitColumns(unit="source_shard", size="shard_total", key="key"), enabled=False)
    progress.update(_batch("a.tar", 100, 60))
    assert progress.bar.total == 400  # one shard of 100 seen, three more assumed alike
    progress.update(_batch("b.tar", 50, 50))
    assert progress.bar.total == 75 * 4
    progress.update(_batch("a.tar", 100, 40))
    progress.update(_batch("c.tar", 80, 80))
    progress.update(_batch("d.tar", 70, 70))
    assert progress.bar.total == 300 and progress.rows == 300
    assert abs(progress.stage_seconds["caption"] - 2.5) < 1e-9

"""The scoring job's sink: one scored table per shard (schemas/scored_table.v1.json), exactly once.

A `ParquetShardSink` that, when a shard's rows are all scored, reads that shard's caption table and writes it
again with the scores filled and the scorer's columns added: same rows, same order, every caption-table value
kept as it was. Markers count rows by the caption table's status and how many captions were cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from recap.errors import RecapError
from recap.pipeline.stage import Batch
from recap.schema import SCORE_COLUMNS, SCORED_TABLE, SCORED_TABLE_SCHEMA, STATUS_OK, table_from_rows
from recap.stages.captioned_shards import caption_table_uri
from recap.stages.parquet_sink import ParquetShardSink, plain_value

# The columns the sink reads from each scored row (the rest of the table comes from the caption table).
SCORED_COLUMNS = (
    "key",
    "source_shard",
    "status",
    "error",
    "re_clip_score",
    "org_clip_score",
    "re_caption_truncated",
    "org_caption_truncated",
    "original_width",
    "original_height",
)


@dataclass(kw_only=True)
class ScoredTableSink(ParquetShardSink):
    """Writes SCORED_TABLE_SCHEMA tables: each shard's caption table from `captions`, scored by `clip_model`."""

    captions: str
    clip_model: str
    schema: pa.Schema = field(default=SCORED_TABLE_SCHEMA)
    sum_columns: tuple[str, ...] = ("re_caption_truncated", "org_caption_truncated")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.input_columns = SCORED_COLUMNS

    def row(self, batch: Batch, index: int) -> dict:
        return {name: plain_value(batch[name][index]) for name in SCORED_COLUMNS}

    def _caption_rows(self, unit: str) -> dict[str, dict]:
        path = caption_table_uri(self.captions, unit)
        try:
            fs, local = fsspec.core.url_to_fs(path, **(self.storage_options or {}))
            with fs.open(local, "rb") as handle:
                rows = pq.read_table(handle).to_pylist()
        except (OSError, ValueError, pa.ArrowInvalid) as error:
            raise RecapError(f"cannot read the caption table {path} ({error})") from None
        return {row["key"]: row for row in rows}

    def table(self, rows: list[dict], unit: str) -> pa.Table:
        captions = self._caption_rows(unit)
        scored = {row["key"]: row for row in rows}
        if set(captions) != set(scored):
            only_table = sorted(set(captions) - set(scored))[:3]
            only_tar = sorted(set(scored) - set(captions))[:3]
            raise RecapError(
                f"shard {unit}: the caption table and the tar hold different samples (only in the table: "
                f"{only_table}, only in the tar: {only_tar}); caption the shards you are scoring"
            )
        out = []
        for key, caption_row in captions.items():
            score = scored[key]
            decoded = score["status"] == STATUS_OK
            row = {name: caption_row.get(name) for name in SCORED_TABLE_SCHEMA.names if name in caption_row}
            row.update({column.name: score.get(column.name) for column in SCORE_COLUMNS if column.name in score})
            row["re_clip_score"], row["org_clip_score"] = score["re_clip_score"], score["org_clip_score"]
            row["clip_model"] = self.clip_model if decoded else None
            image_expected = caption_row["status"] != "bad_input"
            row["score_error"] = None if decoded or not image_expected else score["error"]
            out.append(row)
        return table_from_rows(out, source=f"scored shard {unit}", spec=SCORED_TABLE)

"""The recaption job's sink: one caption table per shard (schemas/caption_table.v1.json), exactly once.

A `ParquetShardSink` whose rows derive the table's provenance and length columns from the captioned rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from recap.pipeline.stage import Batch
from recap.schema import CAPTION_TABLE_SCHEMA, STATUS_OK, table_from_rows, word_count
from recap.stages.parquet_sink import ParquetShardSink, plain_value

# The columns the sink reads from each row (the rest of the table is derived from them).
CAPTIONED_COLUMNS = (
    "key",
    "source_shard",
    "uid",
    "url",
    "org_caption",
    "sha256",
    "status",
    "error",
    "input_warning",
    "re_caption",
    "output_tokens",
    "finish_reason",
)


@dataclass(kw_only=True)
class CaptionTableSink(ParquetShardSink):
    """Writes CAPTION_TABLE_SCHEMA tables; markers count rows by status and sum `output_tokens`."""

    captioner_model: str
    prompt_id: str
    schema: pa.Schema = field(default=CAPTION_TABLE_SCHEMA)
    sum_columns: tuple[str, ...] = ("output_tokens",)
    rate_columns: tuple[str, ...] = ("output_tokens",)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.input_columns = CAPTIONED_COLUMNS

    def row(self, batch: Batch, index: int) -> dict:
        value = {name: plain_value(batch[name][index]) for name in CAPTIONED_COLUMNS}
        ok = value["status"] == STATUS_OK
        tokens = value["output_tokens"]
        return {
            "url": value["url"],
            "re_caption": value["re_caption"],
            "org_caption": value["org_caption"],
            "sha256": value["sha256"],
            "key": str(value["key"]),
            "re_length": word_count(value["re_caption"]),
            "org_length": word_count(value["org_caption"]),
            "uid": value["uid"],
            "source_shard": str(value["source_shard"]),
            "status": str(value["status"]),
            "error": value["error"],
            "captioner_model": self.captioner_model if ok else None,
            "prompt_id": self.prompt_id if ok else None,
            "output_tokens": None if tokens is None else int(tokens),
            "finish_reason": value["finish_reason"],
            "run_id": self.run_id,
            "input_warning": value["input_warning"],
        }

    def table(self, rows: list[dict], unit: str) -> pa.Table:
        return table_from_rows(rows, source=f"shard {unit}")

"""A source of webdataset shards joined with their caption tables: each tar's samples with their recaption.

The recaption job writes `{captions}/{shard}.parquet` for `{shard}.tar`, one row per sample, keyed by `key`.
`CaptionedShardSource` reads each tar as `WebDatasetSource` does and adds the sample's `re_caption` from that
table, so a later stage sees the image, the alt-text and the recaption together. The rows the reader adds for
samples a cut tar lost are in the table too (as `bad_input` rows). A shard without a table, or a sample the
table does not know, is an error that names the files: the tables come from another download.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from recap.errors import RecapError
from recap.pipeline.source import Shard
from recap.pipeline.stage import Batch, object_array
from recap.stages.webdataset_reader import READER_SCHEMA, WebDatasetSource

CAPTIONED_READER_SCHEMA = READER_SCHEMA.append(pa.field("re_caption", pa.string()))


def caption_table_uri(captions: str, shard_name: str) -> str:
    """Where the recaption job wrote the table of the shard named `shard_name` (`00042`) under `captions`."""
    return posixpath.join(captions.rstrip("/"), f"{shard_name}.parquet")


@dataclass(kw_only=True)
class CaptionedShardSource(WebDatasetSource):
    """The tars of `inputs` with the `re_caption` of each sample from the caption tables under `captions`."""

    captions: str
    _fs: fsspec.AbstractFileSystem = field(init=False, repr=False)

    added_schema: ClassVar[pa.Schema] = CAPTIONED_READER_SCHEMA

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fs, _ = fsspec.core.url_to_fs(self.captions, **(self.storage_options or {}))
        missing = [
            shard.name for shard in self.shards if not self._fs.exists(caption_table_uri(self.captions, shard.name))
        ]
        if missing:
            raise RecapError(
                f"{len(missing)} shard(s) have no caption table in {self.captions} (for example "
                f"{caption_table_uri(self.captions, missing[0])}): caption them first with "
                "`recap caption`, or point --captions at the folder that job wrote"
            )

    def _recaptions(self, shard: Shard) -> dict[str, str | None]:
        path = caption_table_uri(self.captions, shard.name)
        try:
            with self._fs.open(path, "rb") as handle:
                table = pq.read_table(handle, columns=["key", "re_caption"])
        except (OSError, ValueError, pa.ArrowInvalid) as error:
            raise RecapError(f"cannot read the caption table {path} ({error}); rerun `recap caption` on it") from None
        return dict(zip(table.column("key").to_pylist(), table.column("re_caption").to_pylist(), strict=True))

    def read(self, unit: Shard) -> Iterator[Batch]:
        recaptions = self._recaptions(unit)
        for batch in super().read(unit):
            keys = [str(key) for key in batch["key"]]
            unknown = [key for key in keys if key not in recaptions]
            if unknown:
                raise RecapError(
                    f"{unit.uri}: sample {unknown[0]} (and {len(unknown) - 1} more in this batch) is not in its "
                    f"caption table {caption_table_uri(self.captions, unit.name)}: the table comes from another "
                    "download of this shard; caption the shards you are scoring"
                )
            yield {**batch, "re_caption": object_array([recaptions[key] for key in keys])}

"""The one loop that reads webdataset shards outside a job: each sample through the job's own reader and decode
stage (`read_shard`, `DecodeImages`: RGB, padded to a square, resized), joined on uid with a caption table.

Training (`CaptionMix`), the pair loader (`pairs.load_pairs` on tars) and retrieval on shards
(`retrieval.shards_set`) differ only in what they keep of each row, so they share this iterator and see the
same pixels the recaption job and each other see.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from recap.console import progress_bar
from recap.pipeline.source import Shard
from recap.pipeline.stage import apply_stage
from recap.schema import STATUS_OK
from recap.stages.decode import DecodeImages, pixels_to_array
from recap.stages.webdataset_reader import read_shard


@dataclass(frozen=True)
class DecodedRow:
    """One sample as the recaption job decodes it. `joined` is the caption table's entry for its uid (None when
    the table has none, or no table was given); `image()` is only meaningful when `ok`."""

    uid: str | None
    key: str
    status: str
    alt_text: str | None  # the tar's caption (.txt), as the job reads it
    metadata: bytes | None  # the tar's raw .json
    joined: Any
    pixels: Any

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def image(self) -> np.ndarray:
        """(S, S, 3) uint8."""
        return pixels_to_array(self.pixels)

    def metadata_field(self, name: str) -> Any:
        """A field of the sample's .json (img2dataset writes the kept metadata columns there)."""
        return json.loads(self.metadata or b"{}").get(name)


def decoded_rows(
    shards: Iterable[Shard],
    image_size: int,
    table: Mapping[str, Any] | None = None,
    *,
    progress: bool = False,
    total: int | None = None,
) -> Iterator[DecodedRow]:
    """Every sample of `shards`, in order, decoded at `image_size` and joined with `table` (uid -> entry).
    Rows the job would mark bad (no image, broken bytes) come with their status and no usable image.
    `progress` shows a bar over the shards (`total` of them)."""
    decode = DecodeImages(image_size=image_size)
    for shard in progress_bar(shards, total=total, desc="reading shards", unit="tar", disable=not progress):
        for batch in read_shard(shard):
            decoded = apply_stage(decode, batch)
            metadata = batch.get("json")
            for index, uid in enumerate(decoded["uid"]):
                yield DecodedRow(
                    uid=uid,
                    key=str(decoded["key"][index]),
                    status=decoded["status"][index],
                    alt_text=decoded["org_caption"][index],
                    metadata=None if metadata is None else metadata[index],
                    joined=None if table is None else table.get(uid),
                    pixels=decoded["pixels"][index],
                )

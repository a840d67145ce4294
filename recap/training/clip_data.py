"""Training data for CLIP: webdataset shards joined with a caption table, with the paper's caption mixing.

Images come through the recaption job's own reader and decode stage (`shard_rows.decoded_rows`: padded to a
square and resized to the model's input), so CLIP trains on the pixels the job and the evaluation see. Each
sample's text is its original caption with probability `p_original`, else its recaption, drawn anew every
epoch (Recap-DataComp-1B's mixing, p = the share of original captions). A sample whose chosen caption is
missing (a failed or absent recaption, an empty alt-text) falls back to the other one, and is counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from recap.errors import RecapError
from recap.io_utils import read_caption_table
from recap.pipeline.source import Shard
from recap.schema import STATUS_OK
from recap.training.shard_rows import decoded_rows

# How a sample's text was chosen (keys of `CaptionMix.counts`).
ORIGINAL, RECAPTION = "original", "recaption"
FELL_BACK_TO_ORIGINAL, FELL_BACK_TO_RECAPTION = "fell_back_to_original", "fell_back_to_recaption"
NO_CAPTION, NOT_IN_TABLE, BAD_IMAGE = "no_caption", "not_in_caption_table", "bad_image"


def pick_caption(
    original: str | None, recaption: str | None, p_original: float, draw: float
) -> tuple[str | None, str]:
    """The text for one sample given a uniform `draw` in [0, 1): (text, how it was chosen)."""
    original = original if original and original.strip() else None
    recaption = recaption if recaption and recaption.strip() else None
    if draw < p_original:
        return (original, ORIGINAL) if original else (recaption, FELL_BACK_TO_RECAPTION if recaption else NO_CAPTION)
    return (recaption, RECAPTION) if recaption else (original, FELL_BACK_TO_ORIGINAL if original else NO_CAPTION)


def read_captions(table: str | Path) -> dict[str, tuple[str | None, str | None]]:
    """uid -> (original caption, recaption) from a caption table (the recaption job's output folder, a release
    table, or one Parquet file). A recaption whose row is not `ok` counts as missing."""
    rows = read_caption_table(table, ["uid", "org_caption", "re_caption"], optional=("status",)).to_pylist()
    captions = {}
    for row in rows:
        ok = row.get("status", STATUS_OK) == STATUS_OK
        captions[row["uid"]] = (row["org_caption"], row["re_caption"] if ok else None)
    return captions


class CaptionMix:
    """Samples (uint8 image, text) from this rank's share of the shards, in a fresh order every epoch.

    Shards are split over ranks (`shards[rank::world_size]`) and read whole, one at a time, into a shuffle
    buffer of `shuffle_buffer` samples. `counts` tallies how each text was chosen (and samples skipped) since
    the object was made.
    """

    def __init__(
        self,
        shards: list[Shard],
        captions: dict[str, tuple[str | None, str | None]],
        *,
        image_size: int,
        p_original: float,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle_buffer: int = 2048,
    ) -> None:
        if not 0.0 <= p_original <= 1.0:
            raise ValueError(f"p_original must be in [0, 1], got {p_original}")
        self.shards = shards[rank::world_size]
        if not self.shards:
            raise RecapError(f"rank {rank} of {world_size} has no shard to read: use at most {len(shards)} workers")
        self.captions, self.p_original, self.seed, self.rank = captions, p_original, seed, rank
        self.image_size = image_size
        self.shuffle_buffer = shuffle_buffer
        self.counts: Counter = Counter()

    def _samples(self, rng: np.random.Generator, order: np.ndarray) -> Iterator[tuple[np.ndarray, str, str]]:
        for row in decoded_rows((self.shards[index] for index in order), self.image_size, self.captions):
            if not row.ok:
                self.counts[BAD_IMAGE] += 1
                continue
            if row.joined is None:
                self.counts[NOT_IN_TABLE] += 1
                continue
            text, how = pick_caption(*row.joined, self.p_original, rng.random())
            self.counts[how] += 1
            if text is not None:
                yield row.image(), text, row.uid

    def epoch(self, epoch: int) -> Iterator[tuple[np.ndarray, str, str]]:
        """One pass over this rank's shards: (image, text, uid) in a shuffled order that depends on the seed,
        the epoch and the rank."""
        rng = np.random.default_rng([self.seed, epoch, self.rank])
        buffer: list = []
        for sample in self._samples(rng, rng.permutation(len(self.shards))):
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(int(rng.integers(len(buffer))))
        for index in rng.permutation(len(buffer)):
            yield buffer[index]


def world_training_data(world: str | Path, split: str, out: str | Path, image_size: int) -> tuple[Path, Path]:
    """A world split as training input: its images as webdataset shards and a caption table whose original
    caption is the alt-text and whose recaption is the ground-truth caption. Returns (shard folder, table);
    the table is written last, so a folder that has it is complete and is reused."""
    import pyarrow.parquet as pq

    from recap.world.generate import load_truth
    from recap.world.shards import write_webdataset

    out = Path(out)
    shards, table = out / "shards", out / "captions.parquet"
    if not table.exists():
        write_webdataset(world, split, shards, samples_per_shard=1000, image_size=image_size)
        truth = load_truth(world, split)
        metadata = ds.dataset(str(Path(world) / split / "metadata"), format="parquet").to_table(
            columns=["uid", "text"]
        )
        alt = dict(zip(metadata["uid"].to_pylist(), metadata["text"].to_pylist(), strict=True))
        uids = truth["uid"].to_pylist()
        pq.write_table(
            pa.table(
                {
                    "uid": uids,
                    "org_caption": [alt.get(uid) for uid in uids],
                    "re_caption": truth["caption"].to_pylist(),
                    "status": [STATUS_OK] * len(uids),
                }
            ),
            table,
        )
    return shards, table

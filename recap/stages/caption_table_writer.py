"""Write one caption table per input shard, exactly once, on any fsspec filesystem.

Rows stream in from the pipeline in any order. The writer buffers them per shard and, when a shard has all
`shard_total` rows, writes `{output}/{shard}.parquet` under a temporary dot-name, moves it into place, then
writes the completion marker `{output}/_done/{shard}.json`. A crash therefore leaves no partial table
visible, and a rerun skips exactly the shards that have a marker. A row whose key was already written for
its shard is dropped (a retried task cannot duplicate rows).
"""

from __future__ import annotations

import json
import math
import posixpath
import time
import uuid
from collections import Counter

import fsspec
import pyarrow.parquet as pq

from recap.errors import RecapError
from recap.pipeline.stage import Batch, batch_length
from recap.schema import STATUS_OK, table_from_rows, word_count

DONE_FOLDER = "_done"
MANIFEST_FOLDER = "_manifests"  # "_" and "." names are skipped by pyarrow.dataset, Spark and HF loaders


def shard_name_of(uri: str) -> str:
    base = posixpath.basename(uri)
    return base[: -len(".tar")] if base.endswith(".tar") else base


class CaptionTableWriter:
    """Driver-side sink for captioned rows (recap.stages.caption.CAPTIONED_COLUMNS)."""

    def __init__(
        self, output: str, *, run_id: str, captioner_model: str, prompt_id: str, storage_options: dict | None = None
    ) -> None:
        self.output = output.rstrip("/")
        self.run_id = run_id
        self.captioner_model = captioner_model
        self.prompt_id = prompt_id
        self.fs, self.root = fsspec.core.url_to_fs(self.output, **(storage_options or {}))
        self._buffers: dict[str, dict[str, dict]] = {}
        self._totals: dict[str, int] = {}
        self.written: dict[str, dict] = {}
        self.duplicates = 0
        try:
            self.fs.makedirs(posixpath.join(self.root, DONE_FOLDER), exist_ok=True)
            self.fs.makedirs(posixpath.join(self.root, MANIFEST_FOLDER), exist_ok=True)
        except OSError as error:
            raise RecapError(f"cannot write to output {self.output}: {error}") from None

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def completed_shards(self) -> set[str]:
        """Names of shards whose table and marker are both in place."""
        markers = self.fs.glob(self._path(DONE_FOLDER, "*.json"))
        names = {posixpath.basename(m)[: -len(".json")] for m in markers}
        return {name for name in names if self.fs.exists(self._path(f"{name}.parquet"))}

    def remove_stale_temporaries(self) -> int:
        stale = self.fs.glob(self._path(".*.parquet.tmp-*"))
        for path in stale:
            self.fs.rm(path)
        return len(stale)

    @staticmethod
    def _optional(value):
        """None for missing values however they arrive (None, NaN from a numpy float column)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return value

    def _row(self, batch: Batch, index: int) -> dict:
        tokens = self._optional(batch["output_tokens"][index])
        re_caption = batch["re_caption"][index]
        org_caption = batch["org_caption"][index]
        ok = batch["status"][index] == STATUS_OK
        return {
            "url": batch["url"][index],
            "re_caption": re_caption,
            "org_caption": org_caption,
            "sha256": batch["sha256"][index],
            "key": str(batch["key"][index]),
            "re_length": word_count(re_caption),
            "org_length": word_count(org_caption),
            "uid": batch["uid"][index],
            "source_shard": str(batch["source_shard"][index]),
            "status": str(batch["status"][index]),
            "error": batch["error"][index],
            "captioner_model": self.captioner_model if ok else None,
            "prompt_id": self.prompt_id if ok else None,
            "output_tokens": None if tokens is None else int(tokens),
            "finish_reason": batch["finish_reason"][index],
            "run_id": self.run_id,
        }

    def add(self, batch: Batch) -> list[str]:
        """Buffer a batch; write every shard it completes. Returns the names of the shards written."""
        finished = []
        for index in range(batch_length(batch)):
            name = shard_name_of(str(batch["source_shard"][index]))
            if name in self.written:
                self.duplicates += 1
                continue
            buffer = self._buffers.setdefault(name, {})
            self._totals[name] = int(batch["shard_total"][index])
            key = str(batch["key"][index])
            if key in buffer:
                self.duplicates += 1
                continue
            buffer[key] = self._row(batch, index)
            if len(buffer) == self._totals[name]:
                self._write_shard(name)
                finished.append(name)
        return finished

    def _write_shard(self, name: str) -> None:
        buffer = self._buffers.pop(name)
        rows = [buffer[key] for key in sorted(buffer)]
        table = table_from_rows(rows, source=f"shard {name}")
        temporary = self._path(f".{name}.parquet.tmp-{uuid.uuid4().hex[:8]}")
        with self.fs.open(temporary, "wb") as handle:
            pq.write_table(table, handle)
        self.fs.mv(temporary, self._path(f"{name}.parquet"))
        counts = Counter(row["status"] for row in rows)
        marker = {
            "shard": name,
            "rows": len(rows),
            "status": dict(counts),
            "output_tokens": sum(row["output_tokens"] or 0 for row in rows),
            "run_id": self.run_id,
            "time": time.time(),
        }
        with self.fs.open(self._path(DONE_FOLDER, f"{name}.json"), "w") as handle:
            handle.write(json.dumps(marker))
        self.written[name] = marker

    def incomplete(self) -> dict[str, tuple[int, int]]:
        """Shards with some rows buffered: name -> (rows seen, rows expected)."""
        return {name: (len(rows), self._totals[name]) for name, rows in self._buffers.items()}

    def write_json(self, relative: str, payload: dict) -> None:
        """Write a JSON file under the output (temporary name, then move)."""
        temporary = self._path(f".{posixpath.basename(relative)}.tmp-{uuid.uuid4().hex[:8]}")
        with self.fs.open(temporary, "w") as handle:
            handle.write(json.dumps(payload, indent=2, default=str) + "\n")
        self.fs.mv(temporary, self._path(relative))

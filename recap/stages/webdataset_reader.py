"""Read webdataset tars (img2dataset's output) from any fsspec filesystem, one shard at a time.

`WebDatasetSource` is the pipeline source over `read_shard`; training and evaluation call `read_shard` too,
so every path that reads tars splits keys, finds images and reports damage the same way.

Every sample in a tar becomes one row, whatever is wrong with it: decoding and validation happen later, in
CPU stages, so that a broken sample is recorded rather than lost. So does every sample the tar lost: when
img2dataset's index of the shard, `NNNNN.parquet`, sits beside `NNNNN.tar`, each key it records as downloaded
(status "success") that the tar does not hold (a tar cut short loses every sample after the cut) becomes a row
with a `read_error` that starts "missing from the tar", and its parquet record as `json` (uid, url, caption,
...). Keys in the tar that the parquet does not list are kept; without a readable parquet the tar alone
counts. Rows carry the raw member bytes:

    key            sample key (the member name up to its first dot)
    source_shard   the tar's URI
    shard_total    how many samples the tar holds (lets the writer know when a shard is complete)
    image          image bytes, or None when the sample has no image member
    image_format   the image member's suffix (jpg, png, ...), or None
    txt            the .txt member's bytes (img2dataset's caption), or None
    json           the .json member's bytes (img2dataset's metadata: uid, url, sha256, ...); for a sample
                   missing from the tar, its record in the parquet as JSON; or None
    read_error     why the sample could not be read from the tar, or None
"""

from __future__ import annotations

import json
import math
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recap.errors import RecapError
from recap.pipeline.source import Shard, Source
from recap.pipeline.stage import Batch, object_array

DOWNLOADED = "success"  # img2dataset's status of a sample it wrote into the tar
MISSING_FROM_TAR = "missing from the tar"
IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
READER_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("source_shard", pa.string()),
        ("shard_total", pa.int64()),
        ("image", pa.binary()),
        ("image_format", pa.string()),
        ("txt", pa.binary()),
        ("json", pa.binary()),
        ("read_error", pa.string()),
    ]
)
READER_COLUMNS = tuple(READER_SCHEMA.names)


def list_shards(inputs: str | list[str], storage_options: dict | None = None) -> list[Shard]:
    """Expand paths, folders and globs (local or any fsspec URI) into sorted, uniquely named tar shards."""
    uris: list[str] = []
    for item in [inputs] if isinstance(inputs, str) else inputs:
        fs, path = fsspec.core.url_to_fs(item, **(storage_options or {}))
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        prefix = "" if protocol in ("file", "local") else f"{protocol}://"
        if any(ch in path for ch in "*?["):
            found = fs.glob(path)
        elif fs.isdir(path):
            found = fs.glob(posixpath.join(path, "*.tar"))
        elif fs.exists(path):
            found = [path]
        else:
            raise RecapError(f"input {item} does not exist")
        tars = sorted(p for p in found if p.endswith(".tar"))
        if not tars:
            raise RecapError(f"input {item} holds no .tar shards")
        uris.extend(prefix + p for p in tars)
    shards = [Shard(uri=uri, name=posixpath.basename(uri)[: -len(".tar")]) for uri in dict.fromkeys(uris)]
    names = [shard.name for shard in shards]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RecapError(f"input shards share the names {duplicates[:5]}; output tables are named after shards")
    return shards


def _split_member(name: str) -> tuple[str, str]:
    """'dir/000123.jpg' -> ('dir/000123', 'jpg'): webdataset keys end at the basename's first dot."""
    directory, base = posixpath.split(name)
    stem, _, suffix = base.partition(".")
    return posixpath.join(directory, stem) if directory else stem, suffix.lower()


def _empty_sample(key: str) -> dict:
    return {"key": key, "image": None, "image_format": None, "txt": None, "json": None, "read_error": None}


class _NotPlain(Exception):
    """A tar the fast path leaves to `tarfile`: pax or GNU long-name headers, links, or any damage."""


_BLOCK = 512
_REGULAR, _DIRECTORY = (b"0", b"\0"), b"5"


def _octal(field: bytes) -> int:
    try:
        return int(field.split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        raise _NotPlain from None


# pax keywords the fast path understands: `path` and `size` override the next header's; the others (img2dataset's
# writer stores a float `mtime` for every member) do not change a member's name or bytes.
_PAX_OVERRIDES, _PAX_IGNORED = {"path", "size"}, {"mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment"}


def _pax_records(data: bytes) -> dict[str, str]:
    """The records ("LENGTH keyword=value\\n") of a pax extended header; _NotPlain for anything unexpected."""
    records, position = {}, 0
    try:
        while position < len(data):
            space = data.index(b" ", position)
            end = position + int(data[position:space])
            keyword, equals, value = data[space + 1 : end - 1].partition(b"=")
            if not equals or data[end - 1 : end] != b"\n":
                raise _NotPlain
            records[keyword.decode("utf-8")] = value.decode("utf-8")
            position = end
        if int(records.get("size", "0")) < 0:
            raise _NotPlain
    except (ValueError, UnicodeDecodeError):
        raise _NotPlain from None
    if set(records) - _PAX_OVERRIDES - _PAX_IGNORED:
        raise _NotPlain
    return records


def _plain_members(handle) -> list[tuple[str, bytes]]:
    """(name, bytes) of every regular file of a plain ustar, GNU or simple pax tar (img2dataset's), as `tarfile`
    reads it, without building a TarInfo per member (tarfile's header parsing took 300 of the 360 us per sample
    of reading an img2dataset shard). Raises _NotPlain at anything else, and the caller reads the tar with
    `tarfile` instead."""
    members, pax = [], None
    while True:
        header = handle.read(_BLOCK)
        if not header:
            if not members or pax is not None:
                raise _NotPlain  # an empty file, or a pax header with no member: tarfile says so
            return members  # the end without end-of-archive blocks, which tarfile accepts too
        if len(header) < _BLOCK:
            raise _NotPlain
        if not header.strip(b"\0"):
            return members  # end-of-archive block
        if _octal(header[148:156]) != sum(header[:148]) + 8 * 32 + sum(header[156:]) or header[124] & 0x80:
            raise _NotPlain  # a bad checksum, or a base-256 size
        kind, size = header[156:157], _octal(header[124:136])
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:  # a ustar long name, split in two as tarfile joins it
            name = prefix.decode("utf-8", "surrogateescape") + "/" + name
        if pax is not None and kind != b"x":
            name, size = pax.get("path", name), int(pax.get("size", size))
        data = handle.read(size)
        if len(data) < size:
            raise _NotPlain  # cut short: tarfile reports where
        handle.read(-size % _BLOCK)
        if kind == b"x":
            if pax is not None:
                raise _NotPlain
            pax = _pax_records(data)
            continue
        pax = None
        if kind in _REGULAR and not name.endswith("/"):
            members.append((name, data))
        elif kind not in _REGULAR and kind != _DIRECTORY:
            raise _NotPlain


def _tar_members(handle) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each regular file: the fast path when the tar is plain, else `tarfile`, whose errors
    (a tar cut short, a damaged header) propagate after the members before the damage."""
    try:
        yield from _plain_members(handle)
        return
    except _NotPlain:
        handle.seek(0)
    with tarfile.open(fileobj=handle, mode="r:") as tar:
        for member in tar:
            if member.isfile():
                yield member.name, tar.extractfile(member).read()


def index_uri(shard: Shard) -> str | None:
    """img2dataset's index of the shard (`.../00042.parquet` for `.../00042.tar`), or None for a non-.tar URI."""
    return shard.uri[: -len(".tar")] + ".parquet" if shard.uri.endswith(".tar") else None


def _downloaded(shard: Shard, storage_options: dict | None) -> pa.Table | None:
    """The rows img2dataset's index beside the tar records as downloaded, or None when there is no index, or it
    is unreadable or not img2dataset's (no `key` and `status` columns): the tar alone is then the truth."""
    uri = index_uri(shard)
    if uri is None:
        return None
    try:
        fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
        if not fs.isfile(path):
            return None
        with fs.open(path, "rb") as handle:
            table = pq.read_table(handle)
    except (OSError, ValueError, pa.ArrowException):
        return None
    if not {"key", "status"} <= set(table.column_names):
        return None
    return table.filter(pc.equal(table.column("status").cast(pa.string()), DOWNLOADED))


def _plain_record(record: dict) -> dict:
    """A parquet row as img2dataset's .json would hold it, without nulls and NaNs."""
    return {
        name: value
        for name, value in record.items()
        if value is not None and not (isinstance(value, float) and math.isnan(value))
    }


def _missing_samples(shard: Shard, samples: dict[str, dict], damaged: bool, storage_options: dict | None) -> list:
    """A row for each sample img2dataset downloaded into this shard that the tar does not hold."""
    downloaded = _downloaded(shard, storage_options)
    if downloaded is None:
        return []
    present = {posixpath.basename(key) for key in samples}
    first = {}  # key -> its first row: a key listed twice is one sample
    for index, key in enumerate(downloaded.column("key").to_pylist()):
        if key is not None:
            first.setdefault(str(key), index)
    lost = [index for key, index in first.items() if key not in present]
    if not lost:
        return []
    tar, parquet = posixpath.basename(shard.uri), posixpath.basename(index_uri(shard))
    why = f"{tar} ends before it (cut short?)" if damaged else f"{tar} does not hold it"
    error = (
        f"{MISSING_FROM_TAR}: img2dataset recorded this sample as downloaded in {parquet} but {why}; "
        "re-download the shard"
    )
    rows = []
    for record in downloaded.take(lost).to_pylist():
        row = _empty_sample(str(record["key"]))
        row["json"] = json.dumps(_plain_record(record), default=str).encode()
        row["read_error"] = error
        rows.append(row)
    return rows


def read_shard(shard: Shard, *, rows_per_batch: int = 256, storage_options: dict | None = None) -> Iterator[Batch]:
    """Yield the samples of one tar as batches of rows (see the module docstring for columns).

    A tar is read whole before its rows are yielded (one shard is one unit of work, as in Ray's
    read_webdataset), which is how `shard_total` is known. A tar that ends early yields what it had, and its
    last, damaged sample carries `read_error`. The samples img2dataset's index beside the tar records as
    downloaded but the tar lost follow as rows of their own, counted in `shard_total`.
    """
    with fsspec.open(shard.uri, "rb", **(storage_options or {})) as handle:
        samples: dict[str, dict] = {}
        error: str | None = None
        try:
            for name, data in _tar_members(handle):
                key, suffix = _split_member(name)
                sample = samples.setdefault(key, _empty_sample(key))
                if suffix in IMAGE_SUFFIXES and sample["image"] is None:
                    sample["image"], sample["image_format"] = data, suffix
                elif suffix in ("txt", "json"):
                    sample[suffix] = data
        except (tarfile.TarError, OSError, EOFError) as failure:
            error = f"the tar is damaged after {len(samples)} samples: {failure}"
        if error is not None:
            damaged = list(samples.values())[-1] if samples else samples.setdefault("", _empty_sample(""))
            damaged["read_error"] = error
    rows = list(samples.values()) + _missing_samples(shard, samples, error is not None, storage_options)
    for start in range(0, len(rows), rows_per_batch):
        chunk = rows[start : start + rows_per_batch]
        batch = {
            column: object_array([row[column] for row in chunk]) for column in READER_COLUMNS if column in chunk[0]
        }
        batch["source_shard"] = object_array([shard.uri] * len(chunk))
        batch["shard_total"] = np.full(len(chunk), len(rows), dtype=np.int64)
        yield {column: batch[column] for column in READER_COLUMNS}


@dataclass(kw_only=True)
class WebDatasetSource(Source):
    """The tars of `inputs` (paths, folders or globs; see `list_shards`), one read unit per tar."""

    inputs: list[str]
    storage_options: dict | None = None
    shards: list[Shard] = field(init=False, repr=False)

    added_schema: ClassVar[pa.Schema] = READER_SCHEMA

    def __post_init__(self) -> None:
        self.shards = list_shards(self.inputs, self.storage_options)

    def units(self) -> list[Shard]:
        return self.shards

    def read(self, unit: Shard) -> Iterator[Batch]:
        return read_shard(unit, rows_per_batch=self.batch_size or 256, storage_options=self.storage_options)

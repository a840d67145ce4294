"""Small filesystem helpers shared by the commands: writable-folder checks, atomic writes, table reading."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from recap.errors import RecapError


def ensure_writable_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create `path` if needed and prove we can write into it, or raise RecapError naming it."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise RecapError(f"{what} {folder} exists and is not a folder; choose another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise RecapError(
            f"cannot write to {what} {folder}: {error.strerror or error}; choose a writable path"
        ) from None
    return folder


def write_json_atomic(path: str | os.PathLike, payload: object, *, ensure_ascii: bool = True) -> None:
    """Write JSON to a temporary name beside `path` and rename it, so readers never see half a file
    (`ensure_ascii` False: UTF-8 text as it is, not \\u escapes)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False, ensure_ascii=ensure_ascii) + "\n", "utf-8")
    os.replace(temporary, path)


def replace_folder(staging: Path, final: Path, keep: tuple[str, ...] = ()) -> None:
    """Move a fully written `staging` folder into place at `final`, replacing what was there but the files named
    in `keep` (a command's log, which may be open for writing: a rename keeps it open)."""
    if final.exists():
        for name in keep:
            if (final / name).is_file() and not (staging / name).exists():
                os.replace(final / name, staging / name)
        shutil.rmtree(final)
    os.replace(staging, final)


def holds_only(folder: Path, names: tuple[str, ...]) -> bool:
    """Whether `folder` is missing, empty, or holds nothing but files named in `names`."""
    return not folder.exists() or all(item.name in names for item in folder.iterdir())


def read_caption_table(
    path: str | Path, columns: list[str], optional: tuple[str, ...] = (), *, hint: str = ""
) -> pa.Table:
    """Read `columns` (and those of `optional` that exist) from a Parquet file or a folder of them.

    Raises RecapError naming the file and the missing column, followed by `hint` (the option that picks it).
    `_`- and `.`-prefixed files (markers, manifests, temporaries) are not part of the table.
    """
    path = Path(path)
    if not path.exists():
        raise RecapError(f"table {path} does not exist")
    try:
        dataset = ds.dataset(path, format="parquet", exclude_invalid_files=True) if path.is_dir() else None
        schema = dataset.schema if dataset is not None else pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise RecapError(f"{path} is not a readable Parquet file or folder ({error})") from None
    missing = [c for c in columns if c not in schema.names]
    if missing and path.is_dir() and (path / "release").is_dir():  # curate's --out: exclusions.parquet + release/
        raise RecapError(
            f"{path} is a `recap curate` output folder (its exclusions table has no {missing}): "
            f"give its release table, {path / 'release'}"
        )
    if missing:
        raise RecapError(
            f"{path} has no column(s) {missing} (it has {', '.join(schema.names)})" + (f"; {hint}" if hint else "")
        )
    wanted = columns + [c for c in optional if c in schema.names and c not in columns]
    return dataset.to_table(columns=wanted) if dataset is not None else pq.read_table(path, columns=wanted)

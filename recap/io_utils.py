"""Small filesystem helpers shared by the commands: writable-folder checks and atomic writes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

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


def write_json_atomic(path: str | os.PathLike, payload: object) -> None:
    """Write JSON to a temporary name beside `path` and rename it, so readers never see half a file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(temporary, path)


def replace_folder(staging: Path, final: Path) -> None:
    """Move a fully written `staging` folder into place at `final`, replacing what was there."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)

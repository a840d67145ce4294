"""How reports name files: relative to the run folder or the project, never as the absolute paths of the machine
that ran them."""

from __future__ import annotations

import os

from recap.models.assets import shipped_captioner
from recap.report import PROJECT_ROOT, display_path


def test_shipped_models_read_as_project_files():
    assert display_path(shipped_captioner()) == "recap/assets/captioner-tiny"
    assert display_path(PROJECT_ROOT / "recap" / "assets" / "clip-tiny") == "recap/assets/clip-tiny"


def test_paths_inside_the_run_folder_read_relative_to_it(tmp_path):
    assert display_path(tmp_path / "run" / "shards", base=tmp_path / "run") == "shards"
    assert display_path(tmp_path / "run", base=tmp_path / "run") == "."


def test_paths_under_the_working_folder_read_relative_to_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "runs" / "demo" / "captions") == os.path.join("runs", "demo", "captions")


def test_what_is_not_a_local_absolute_path_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for value in ("runs/demo", "s3://bucket/shards", "ViT-B-16", "/elsewhere/model"):
        assert display_path(value) == value
    assert display_path(None) is None

"""Tests for recap.schema: the golden schema files, the Parquet round trip through common readers, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pa_dataset
import pyarrow.parquet as pq
import pytest

from recap.schema import (
    CAPTION_COLUMNS,
    CAPTION_TABLE_SCHEMA,
    CAPTION_TABLE_VERSION,
    ORIGIN_RECAP_DATACOMP,
    STATUS_BAD_INPUT,
    STATUS_OK,
    SchemaError,
    check_schema_files,
    empty_table,
    schema_document,
    schema_files,
    schema_from_document,
    table_from_rows,
    validate_table,
    word_count,
)

SCHEMAS_FOLDER = Path(__file__).parents[1] / "schemas"
REGENERATE = (
    "if the schema change is intended, run `python -m recap.schema --write schemas/` "
    "(and bump CAPTION_TABLE_VERSION if it breaks existing readers)"
)

# Names and types of the released Recap-DataComp-1B table (REFERENCE.md, "Released table schema").
RELEASED_TYPES = {
    "url": pa.string(),
    "re_caption": pa.string(),
    "org_caption": pa.string(),
    "sha256": pa.string(),
    "key": pa.string(),
    "re_clip_score": pa.float64(),
    "org_clip_score": pa.float64(),
    "re_length": pa.int64(),
    "org_length": pa.int64(),
    "re_gpt4v_score": pa.int64(),
    "org_gpt4v_score": pa.int64(),
}


def _ok_row(index: int, caption: str, alt_text: str | None) -> dict:
    return {
        "url": f"https://example.com/{index}.jpg",
        "re_caption": caption,
        "org_caption": alt_text,
        "sha256": f"{index:064x}",
        "key": f"00000{index:04d}",
        "re_length": word_count(caption),
        "org_length": word_count(alt_text),
        "uid": f"{index:032x}",
        "source_shard": "s3://bucket/shards/00000.tar",
        "status": STATUS_OK,
        "captioner_model": "org/captioner-7b",
        "prompt_id": "detailed_v1",
        "output_tokens": 20 + index,
        "finish_reason": "stop",
        "run_id": "run-0001",
    }


def _bad_row(index: int) -> dict:
    return {
        "url": f"https://example.com/{index}.jpg",
        "org_caption": "naïve café ☕",
        "key": f"00000{index:04d}",
        "org_length": 3,
        "uid": f"{index:032x}",
        "source_shard": "s3://bucket/shards/00000.tar",
        "status": STATUS_BAD_INPUT,
        "error": "cannot identify image file",
        "run_id": "run-0001",
    }


@pytest.fixture
def rows() -> list[dict]:
    return [
        _ok_row(0, "A red bicycle leans against a brick wall.", "bike"),
        _bad_row(1),
        _ok_row(2, "Ein Hund läuft über die Wiese; 犬が走っている 🐕.", None),
        _ok_row(3, "Crème brûlée on a white plate, with a spoon.", "dessert — yum"),
        _bad_row(4),
    ]


@pytest.fixture
def parquet_file(rows: list[dict], tmp_path: Path) -> Path:
    folder = tmp_path / "tables"
    folder.mkdir()
    path = folder / "00000.parquet"
    pq.write_table(table_from_rows(rows), path)
    return path


def test_schema_json_matches_golden_file() -> None:
    path = SCHEMAS_FOLDER / f"caption_table.v{CAPTION_TABLE_VERSION}.json"
    assert path.exists(), f"{path} is missing; {REGENERATE}"
    golden = json.loads(path.read_text(encoding="utf-8"))
    assert schema_document() == golden, f"recap/schema.py and {path} differ; {REGENERATE}"
    rebuilt = schema_from_document(golden)
    assert rebuilt == CAPTION_TABLE_SCHEMA, f"{path} does not rebuild CAPTION_TABLE_SCHEMA; {REGENERATE}"
    assert [field.nullable for field in rebuilt] == [field.nullable for field in CAPTION_TABLE_SCHEMA]
    assert rebuilt.equals(CAPTION_TABLE_SCHEMA, check_metadata=True)


def test_schema_files_are_byte_identical_to_generated() -> None:
    for name, expected in schema_files().items():
        path = SCHEMAS_FOLDER / name
        assert path.exists(), f"{path} is missing; {REGENERATE}"
        assert path.read_text(encoding="utf-8") == expected, f"{path} is stale; {REGENERATE}"
    assert check_schema_files(SCHEMAS_FOLDER) == []


def test_check_schema_files_reports_a_stale_file(tmp_path: Path) -> None:
    for name, content in schema_files().items():
        (tmp_path / name).write_text(content.replace("Null", "None"), encoding="utf-8")
    diffs = check_schema_files(tmp_path)
    assert len(diffs) == len(schema_files()) == 4 and all("-" in diff and "+" in diff for diff in diffs)


def test_schema_from_document_rejects_unknown_type() -> None:
    doc = schema_document()
    doc["columns"][5]["type"] = "float16"
    with pytest.raises(ValueError, match="re_clip_score.*float16"):
        schema_from_document(doc)


def test_every_column_is_described_and_unique() -> None:
    names = [column.name for column in CAPTION_COLUMNS]
    assert len(names) == len(set(names)) == len(CAPTION_TABLE_SCHEMA)
    for column, field in zip(CAPTION_COLUMNS, CAPTION_TABLE_SCHEMA, strict=True):
        assert column.description.strip(), f"column {column.name!r} has no description"
        assert field.metadata[b"description"].decode() == column.description
    assert CAPTION_TABLE_SCHEMA.metadata[b"recap.table"] == b"caption_table"
    assert CAPTION_TABLE_SCHEMA.metadata[b"recap.schema_version"] == str(CAPTION_TABLE_VERSION).encode()


def test_released_columns_have_reference_types() -> None:
    released = {c.name: c.type for c in CAPTION_COLUMNS if c.origin == ORIGIN_RECAP_DATACOMP}
    assert released == RELEASED_TYPES
    assert [c.name for c in CAPTION_COLUMNS[: len(RELEASED_TYPES)]] == list(RELEASED_TYPES)
    non_nullable = [c.name for c in CAPTION_COLUMNS if not c.nullable]
    assert non_nullable == ["key", "source_shard", "status", "run_id"]


def test_word_count() -> None:
    assert word_count(None) is None
    assert word_count("") == 0
    assert word_count("  a\tb\nc  d ") == 4


def test_empty_table_has_schema() -> None:
    table = empty_table()
    assert table.num_rows == 0
    assert table.schema.equals(CAPTION_TABLE_SCHEMA, check_metadata=True)
    validate_table(table)


def test_table_from_rows_fills_missing_nullable_columns(rows: list[dict]) -> None:
    table = table_from_rows(rows)
    assert table.schema.equals(CAPTION_TABLE_SCHEMA, check_metadata=True)
    assert table.column("re_caption").to_pylist()[1] is None
    assert table.column("re_clip_score").null_count == len(rows)
    assert table.column("org_caption").to_pylist()[2] is None


def test_parquet_round_trip_with_pandas(parquet_file: Path, rows: list[dict]) -> None:
    expected = table_from_rows(rows).to_pandas()
    actual = pd.read_parquet(parquet_file)
    pd.testing.assert_frame_equal(actual, expected)
    assert actual["re_caption"].isna().tolist() == [False, True, False, False, True]


def test_parquet_round_trip_with_pyarrow_dataset(parquet_file: Path, rows: list[dict]) -> None:
    table = pa_dataset.dataset(parquet_file.parent, format="parquet").to_table()
    assert table.schema.equals(CAPTION_TABLE_SCHEMA, check_metadata=True)
    assert [field.nullable for field in table.schema] == [field.nullable for field in CAPTION_TABLE_SCHEMA]
    assert table.equals(table_from_rows(rows))
    validate_table(table, str(parquet_file))


def test_parquet_round_trip_with_hf_datasets(
    parquet_file: Path, rows: list[dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    dataset = datasets.load_dataset(
        "parquet", data_files=str(parquet_file), split="train", cache_dir=str(tmp_path / "hf_cache")
    )
    assert dataset.column_names == CAPTION_TABLE_SCHEMA.names
    assert dataset.to_list() == table_from_rows(rows).to_pylist()
    assert dataset[1]["re_caption"] is None and dataset[1]["output_tokens"] is None


def test_validate_table_names_missing_column(rows: list[dict]) -> None:
    table = table_from_rows(rows).drop_columns(["sha256"])
    with pytest.raises(SchemaError, match=r"shard-7: missing columns \['sha256'\]"):
        validate_table(table, "shard-7")


def test_validate_table_names_extra_column(rows: list[dict]) -> None:
    table = table_from_rows(rows).append_column("score", pa.array([0.0] * len(rows)))
    with pytest.raises(SchemaError, match=r"extra columns \['score'\]"):
        validate_table(table)


def test_validate_table_names_wrong_type(rows: list[dict]) -> None:
    table = table_from_rows(rows)
    index = table.schema.get_field_index("re_length")
    table = table.set_column(index, "re_length", table.column("re_length").cast(pa.int32()))
    with pytest.raises(SchemaError, match="'re_length' has type int32, expected int64"):
        validate_table(table)


def test_validate_table_names_null_in_status(rows: list[dict]) -> None:
    rows[3]["status"] = None
    with pytest.raises(SchemaError, match="'status' is not nullable but has 1 null"):
        table_from_rows(rows)


def test_validate_table_names_unknown_status(rows: list[dict]) -> None:
    rows[0]["status"] = "timeout"
    with pytest.raises(SchemaError, match=r"'status' has values \['timeout'\]"):
        table_from_rows(rows)


def test_validate_table_names_unknown_finish_reason(rows: list[dict]) -> None:
    rows[0]["finish_reason"] = "abort"
    with pytest.raises(SchemaError, match=r"'finish_reason' has values \['abort'\]"):
        table_from_rows(rows)


def test_table_from_rows_names_unknown_key(rows: list[dict]) -> None:
    rows[2]["caption"] = "typo of re_caption"
    with pytest.raises(SchemaError, match=r"row 2 has unknown keys \['caption'\]"):
        table_from_rows(rows)


def test_table_from_rows_names_missing_required_key(rows: list[dict]) -> None:
    del rows[4]["run_id"]
    with pytest.raises(SchemaError, match=r"row 4 lacks non-nullable keys \['run_id'\]"):
        table_from_rows(rows)


def test_table_from_rows_names_column_of_bad_value(rows: list[dict]) -> None:
    rows[0]["output_tokens"] = "many"
    with pytest.raises(SchemaError, match="column 'output_tokens'"):
        table_from_rows(rows)

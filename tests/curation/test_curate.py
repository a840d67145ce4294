"""Curation on hand-made scored tables whose every drop reason is known, and the release's consumers."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from recap.curation.curate import REASONS, CurateConfig, auc, curate
from recap.schema import SCORED_TABLE, SCORED_TABLE_SCHEMA, table_from_rows, validate_table


def _row(index: int, **values) -> dict:
    row = {
        "url": f"https://example.com/{index}.jpg",
        "re_caption": "The image shows one object on a white background. A large red circle is in the center.",
        "org_caption": "red circle photo " + "".join(chr(ord("a") + int(digit)) for digit in str(index)),
        "sha256": f"{index:064x}",
        "key": f"{index:09d}",
        "re_clip_score": 60.0 + index % 7,
        "org_clip_score": float(index),
        "uid": f"{index:032x}",
        "source_shard": f"shards/{index // 10:05d}.tar",
        "status": "ok",
        "run_id": "run",
        "clip_model": "clip",
        "original_width": 512,
        "original_height": 512,
    }
    row.update(values)
    row["re_length"] = None if row["re_caption"] is None else len(row["re_caption"].split())
    row["org_length"] = None if row["org_caption"] is None else len(row["org_caption"].split())
    return row


# index -> (overrides, the reason the row must be dropped for, or None when it must be kept)
CASES = {
    0: ({"status": "bad_input", "re_caption": None, "re_clip_score": None, "org_clip_score": None}, "bad_input"),
    1: ({"status": "caption_failed", "re_caption": None, "re_clip_score": None}, "caption_failed"),
    2: ({"sha256": "ab" * 32, "url": "https://a.example/missing.gif"}, "placeholder"),
    3: ({"sha256": "ab" * 32, "url": "https://b.example/missing.gif"}, "placeholder"),
    4: ({"sha256": "ab" * 32, "url": "https://c.example/missing.gif"}, "placeholder"),
    5: ({"sha256": "cd" * 32}, None),  # the first copy of a duplicated image is kept...
    6: ({"sha256": "cd" * 32}, "duplicate_image"),  # ...the second is not
    7: ({"original_width": 60}, "small_image"),
    8: ({"original_width": 1600, "original_height": 400}, "aspect_ratio"),
    9: ({"org_caption": "img"}, "short_alt_text"),
    10: ({"re_caption": "A circle."}, "short_recaption"),
    11: ({"org_caption": "red circle photo number"}, None),
    12: ({"org_caption": "Red circle, photo number 12!"}, "duplicate_caption"),  # row 11's, once normalised
    13: ({"org_clip_score": None}, "no_clip_score"),
    14: ({"org_clip_score": 1.0}, "low_clip_score"),
    15: ({"original_width": None, "original_height": None}, None),  # no size in the metadata: size filters pass
}


@pytest.fixture()
def scored(tmp_path) -> Path:
    rows = [_row(index, **CASES.get(index, ({}, None))[0]) for index in range(40)]
    folder = tmp_path / "scored"
    folder.mkdir()
    for shard in range(4):  # four scored tables of ten rows, as the scoring job writes them
        part = [row for row in rows if row["source_shard"] == f"shards/{shard:05d}.tar"]
        pq.write_table(table_from_rows(part, spec=SCORED_TABLE), folder / f"{shard:05d}.parquet")
    (folder / "_done").mkdir()  # markers and manifests beside the tables are not tables
    return folder


def _config(scored, out, **options) -> CurateConfig:
    defaults = {
        "min_side": 100,
        "max_aspect": 2.0,
        "min_alt_text_words": 3,
        "min_recaption_words": 5,
        "dedup_captions": True,
        "min_score": 2.0,
        "rows_per_file": 7,
    }
    return CurateConfig(scored=str(scored), out=str(out), **{**defaults, **options})


def test_every_row_is_kept_or_dropped_for_its_first_reason(scored, tmp_path):
    card = curate(_config(scored, tmp_path / "out"), progress=False)
    exclusions = {
        row["uid"]: row["reason"] for row in pq.read_table(tmp_path / "out" / "exclusions.parquet").to_pylist()
    }
    for index, (_, reason) in CASES.items():
        assert exclusions.get(f"{index:032x}") == reason, index
    release = pq.ParquetDataset(tmp_path / "out" / "release").read()
    kept = set(release.column("uid").to_pylist())
    assert not kept & set(exclusions) and len(kept) + len(exclusions) == 40 == card["rows_in"]
    assert card["rows_kept"] == len(kept) == 40 - sum(step["dropped"] for step in card["funnel"])
    assert [step["reason"] for step in card["funnel"]] == list(REASONS)
    assert card["funnel"][-1]["remaining"] == card["rows_kept"]
    # stable order and file split: rows by (source shard, key), 7 per file
    files = sorted((tmp_path / "out" / "release").glob("part-*.parquet"))
    assert [pq.read_metadata(path).num_rows for path in files] == [7] * (len(kept) // 7) + [len(kept) % 7] * (
        len(kept) % 7 > 0
    )
    keys = release.column("key").to_pylist()
    assert keys == sorted(keys)
    validate_table(release, "release", SCORED_TABLE)
    assert release.schema.names[:11] == SCORED_TABLE_SCHEMA.names[:11]  # Recap-DataComp-1B's columns first
    assert (tmp_path / "out" / "data_card.md").read_text().count("| bad_input | 1 |") == 1
    assert (tmp_path / "out" / "clip_scores.png").stat().st_size > 1000


def test_top_fraction_keeps_that_share_of_the_scored_rows(scored, tmp_path):
    card = curate(CurateConfig.with_preset("datacomp-clip-top30", scored=str(scored), out=str(tmp_path / "out")))
    scored_rows = 40 - 2  # the bad input and the row without an org_clip_score
    assert abs(card["rows_kept"] - 0.3 * scored_rows) <= 1
    kept = pq.ParquetDataset(tmp_path / "out" / "release").read().column("org_clip_score").to_pylist()
    assert min(kept) > max(set(range(40)) - {0, 13} - {int(score) for score in kept})  # the highest scores


def test_a_rerun_replaces_the_release(scored, tmp_path):
    curate(_config(scored, tmp_path / "out", rows_per_file=2), progress=False)
    curate(_config(scored, tmp_path / "out"), progress=False)
    assert len(list((tmp_path / "out" / "release").glob("*.parquet"))) == 4
    assert not list(tmp_path.glob(".out.staging"))


def test_bad_inputs_name_the_file(tmp_path):
    from recap.errors import RecapError

    with pytest.raises(RecapError, match="run `recap score`"):
        curate(CurateConfig(scored=str(tmp_path), out=str(tmp_path / "out")))
    caption_row = {k: v for k, v in _row(1).items() if k not in ("clip_model", "original_width", "original_height")}
    pq.write_table(table_from_rows([caption_row]), tmp_path / "00000.parquet")  # a caption table, not scored
    with pytest.raises(RecapError, match=r"00000\.parquet is not a scored table"):
        curate(CurateConfig(scored=str(tmp_path), out=str(tmp_path / "out")))
    with pytest.raises(ValueError, match="preset"):
        CurateConfig.with_preset("top-10", scored="x", out="y")


@pytest.mark.parametrize("older", [2, 4])
def test_tables_written_before_input_warning_curate_with_it_null(scored, tmp_path, older):
    """input_warning was appended to version 1: a folder whose tables (some or all) lack it curates as before,
    and the release holds the column, null for those tables, as written for the others."""
    import pyarrow as pa

    paths = sorted(scored.glob("*.parquet"))
    for path in paths[:older]:
        pq.write_table(pq.read_table(path).drop_columns(["input_warning"]), path)
    if older < len(paths):
        last = pq.read_table(paths[-1])
        warnings = [f"warning {uid}" if uid == f"{35:032x}" else None for uid in last.column("uid").to_pylist()]
        index = last.schema.get_field_index("input_warning")
        pq.write_table(last.set_column(index, "input_warning", pa.array(warnings, pa.string())), paths[-1])
    card = curate(_config(scored, tmp_path / "out"), progress=False)
    release = pq.ParquetDataset(tmp_path / "out" / "release").read()
    validate_table(release, "release", SCORED_TABLE)
    assert card["rows_in"] == 40 and release.num_rows == card["rows_kept"]
    warned = {row["uid"]: row["input_warning"] for row in release.to_pylist() if row["input_warning"] is not None}
    assert warned == ({} if older == len(paths) else {f"{35:032x}": f"warning {35:032x}"})


def test_auc_matches_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    positives, negatives = [3.0, 2.0, 2.0, 5.0, 1.0], [2.0, 1.0, 0.5, 2.0]
    expected = roc_auc_score([1] * 5 + [0] * 4, positives + negatives)
    assert auc(positives, negatives) == pytest.approx(expected, abs=1e-4)
    assert auc([1.0], []) is None


def _records(frame) -> list[dict]:
    """A frame's rows sorted by key, with every kind of null (None, NaN, pd.NA) as None."""
    import pandas as pd

    frame = frame.sort_values("key").reset_index(drop=True).astype(object)
    return [
        {k: (None if v is None or v is pd.NA or v != v else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def test_the_release_reads_the_same_in_every_consumer(scored, tmp_path):
    """pandas, pyarrow.dataset, duckdb, polars and HF datasets see the same rows, columns and types."""
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds
    from datasets import load_dataset

    curate(_config(scored, tmp_path / "out"), progress=False)
    folder = tmp_path / "out" / "release"
    files = sorted(str(path) for path in folder.glob("*.parquet"))
    reference = ds.dataset(str(folder), format="parquet").to_table()
    assert reference.schema.equals(SCORED_TABLE_SCHEMA)
    expected = sorted(reference.to_pylist(), key=lambda row: row["key"])
    hf = load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    frames = {
        "pandas": pd.read_parquet(folder),
        "duckdb": duckdb.sql(f"SELECT * FROM read_parquet({files})").df(),
        "polars": pl.read_parquet(files).to_pandas(),
        "datasets": hf.to_pandas(),
    }
    for name, frame in frames.items():
        assert list(frame.columns) == SCORED_TABLE_SCHEMA.names, name
        assert _records(frame) == expected, name
    # types, as each library names them
    arrow_types = {field.name: str(field.type) for field in SCORED_TABLE_SCHEMA}
    polars_names = {"string": "String", "double": "Float64", "int64": "Int64", "bool": "Boolean"}
    duckdb_names = {"string": "VARCHAR", "double": "DOUBLE", "int64": "BIGINT", "bool": "BOOLEAN"}
    datasets_names = {"string": "string", "double": "float64", "int64": "int64", "bool": "bool"}
    polars_schema = pl.read_parquet(files).schema
    described = {row[0]: row[1] for row in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet({files})").fetchall()}
    pandas_arrow = pd.read_parquet(folder, dtype_backend="pyarrow")
    for column, arrow_type in arrow_types.items():
        assert str(polars_schema[column]) == polars_names[arrow_type], column
        assert described[column] == duckdb_names[arrow_type], column
        assert hf.features[column].dtype == datasets_names[arrow_type], column
        assert str(pandas_arrow[column].dtype.pyarrow_dtype) == arrow_type, column

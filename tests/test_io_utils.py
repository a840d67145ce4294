import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recap.errors import RecapError
from recap.io_utils import read_caption_table


def test_a_curate_output_folder_points_at_its_release_table(tmp_path):
    """`recap curate --out X` holds exclusions.parquet beside release/: training on X by mistake names X/release."""
    pq.write_table(pa.table({"uid": ["a"], "reason": ["balance"]}), tmp_path / "exclusions.parquet")
    (tmp_path / "release").mkdir()
    release = pa.table({"uid": ["b"], "org_caption": ["alt"], "re_caption": ["A red heart."]})
    pq.write_table(release, tmp_path / "release" / "part-00000.parquet")

    with pytest.raises(RecapError, match=r"curate` output folder .*give its release table, .*release"):
        read_caption_table(tmp_path, ["uid", "org_caption", "re_caption"])
    assert read_caption_table(tmp_path / "release", ["uid", "re_caption"]).to_pylist() == [
        {"uid": "b", "re_caption": "A red heart."}
    ]


def test_a_missing_column_names_the_table_and_the_hint(tmp_path):
    pq.write_table(pa.table({"uid": ["a"]}), tmp_path / "t.parquet")
    with pytest.raises(RecapError, match=r"t\.parquet has no column\(s\) \['re_caption'\] .*; use --column"):
        read_caption_table(tmp_path / "t.parquet", ["re_caption"], hint="use --column")

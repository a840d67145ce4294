"""Curation of the world's recaptioned and scored shards, checked against what the world knows."""

import json

import pyarrow.dataset as ds

from recap.cli import main
from recap.curation.curate import CurateConfig, curate


def test_top30_preset_on_the_world_with_its_data_card(small_world, scored_shards, tmp_path):
    card = curate(
        CurateConfig.with_preset(
            "datacomp-clip-top30", scored=str(scored_shards), out=str(tmp_path / "release"), world=str(small_world)
        ),
        progress=False,
    )
    rows = ds.dataset(str(scored_shards), format="parquet").to_table().to_pylist()
    scored = [row for row in rows if row["org_clip_score"] is not None]
    assert abs(card["rows_kept"] - 0.3 * len(scored)) <= 1
    assert card["rows_in"] == len(rows) == card["rows_kept"] + sum(step["dropped"] for step in card["funnel"])
    quality = card["world_quality"]
    by_kind = quality["org_clip_score_by_alt_kind"]
    assert by_kind["wrong"]["mean"] < by_kind["descriptive"]["mean"]
    assert by_kind["generic"]["mean"] < by_kind["descriptive"]["mean"]
    assert quality["auc_wrong_vs_descriptive"] > 0.7
    assert quality["caption_quality"]["re_caption"]["object_precision"] > 0.9
    assert card["models"]["captioners"][0]["prompt_text"].startswith("Please generate a detailed caption")
    assert json.loads((tmp_path / "release" / "data_card.json").read_text())["rows_kept"] == card["rows_kept"]
    text = (tmp_path / "release" / "data_card.md").read_text()
    assert "AUC of `org_clip_score`" in text and "low_clip_score" in text


def test_curate_command_prints_the_funnel(scored_shards, tmp_path, capsys):
    out = tmp_path / "release"
    assert main(["curate", "--scored", str(scored_shards), "--out", str(out), "--min-recaption-words", "20"]) == 0
    printed = capsys.readouterr().out
    assert "kept" in printed and f"data card: {out}/data_card.md" in printed
    assert main(["curate", "--scored", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "run `recap score`" in capsys.readouterr().err

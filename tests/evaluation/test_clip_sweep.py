"""recap clip-sweep: one CLIP per p on the same data and seed, Table 3's shape, the claims checked, reruns skip."""

import json

import pytest

from recap.cli import main
from recap.evaluation.clip_sweep import DEFAULT_MODEL, ClipSweepConfig, claims, markdown_table, p_label, run_sweep
from recap.training.clip_training import ClipTrainingConfig


def _row(p, retrieval, brand):
    return {"p_original": p, "mean_recall@1": retrieval, "brand_top1": brand}


def test_claims_on_hand_made_rows():
    holds = claims([_row(1.0, 20.0, 80.0), _row(0.8, 58.0, 76.0), _row(0.5, 61.0, 60.0), _row(0.0, 62.0, 33.0)])
    assert holds["retrieval_gain_p0_over_p1"] == 42.0 and holds["retrieval_holds"]
    assert holds["brand_gain_p1_over_p0"] == 47.0 and holds["brand_holds"]
    assert holds["middle_p_with_both"] == [0.8] and holds["trade_off_holds"]  # 0.5 is 20 brand points short
    fails = claims([_row(1.0, 50.0, 45.0), _row(0.5, 60.0, 40.0), _row(0.0, 65.0, 34.0)])
    assert not fails["retrieval_holds"] and not fails["brand_holds"]
    assert fails["middle_p_with_both"] == [0.5]  # within 5 points of both ends, though the ends are close
    assert "note" in claims([_row(0.5, 1.0, 1.0)])


def test_p_labels_keep_two_decimals_where_one_would_round():
    assert [p_label(p) for p in (1.0, 0.65, 0.5, 0.0, 0.125)] == ["1.0", "0.65", "0.5", "0.0", "0.12"]


def test_sweep_config_rejects_bad_values(small_world, tmp_path):
    training = ClipTrainingConfig(train=str(small_world / "web"), out=str(tmp_path))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        ClipSweepConfig(training=training, eval=str(small_world / "eval"), p_values=(1.5,))
    with pytest.raises(ValueError, match="distinct"):
        ClipSweepConfig(training=training, eval=str(small_world / "eval"), p_values=(0.5, 0.5))
    with pytest.raises(ValueError, match="not a world split"):
        ClipSweepConfig(training=training, eval=str(tmp_path), p_values=(0.5,))


def test_a_small_sweep_trains_each_p_once_and_reruns_skip(small_world, tmp_path, capsys):
    out = tmp_path / "sweep"
    base = ["clip-sweep", "--train", str(small_world / "web"), "--eval", str(small_world / "eval"), "--out", str(out)]
    base += ["--batch-size", "32", "--warmup-steps", "2", "--quiet"]
    assert main([*base, "--p-values", "1.0,0.0", "--steps", "12", "--parallel", "2"]) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert [row["p_original"] for row in sweep["rows"]] == [1.0, 0.0]
    for row in sweep["rows"]:
        assert 0 <= row["mean_recall@1"] <= 100 and row["brand_top1"] is not None and row["train_seconds"] > 0
    # p=1.0 trained on alt-text only, p=0.0 on the ground truth only (no fallbacks on this world split)
    assert set(sweep["rows"][0]["caption_choices"]) <= {"original", "fell_back_to_recaption"}
    assert set(sweep["rows"][1]["caption_choices"]) == {"recaption"}
    assert {"retrieval_holds", "brand_holds", "trade_off_holds"} <= set(sweep["claims"])
    printed = capsys.readouterr().out
    assert "| p | I->T R@1" in printed and "| 1.0 |" in printed and "| 0.0 |" in printed
    assert (out / "sweep.md").read_text() == markdown_table(sweep)
    # both p share one copy of the training data, written once
    assert len(list((out / "data" / "shards").glob("*.tar"))) >= 1 and not (out / "p-1.00" / "data").exists()

    # both p trained at once, each in its own process with one torch thread of the two cores
    assert sweep["parallel"] == 2
    assert all(
        json.loads((out / p / "retrieval.json").read_text())["training_config"]["threads"] >= 1
        for p in ("p-1.00", "p-0.00")
    )

    # the same sweep again, one p at a time: nothing retrains (the thread count is not part of a run's identity)
    stamps = {p: (out / p / "retrieval.json").stat().st_mtime_ns for p in ("p-1.00", "p-0.00")}
    again = run_sweep(
        ClipSweepConfig(
            training=ClipTrainingConfig(
                train=str(small_world / "web"),
                out=str(out),
                model=DEFAULT_MODEL,  # clip-sweep's default, not train-clip's
                steps=12,
                batch_size=32,
                warmup_steps=2,
            ),
            eval=str(small_world / "eval"),
            p_values=(1.0, 0.0),
        ),
        progress=False,
    )
    assert again["rows"] == sweep["rows"]
    assert {p: (out / p / "retrieval.json").stat().st_mtime_ns for p in stamps} == stamps
    # a changed recipe (more steps) is not the finished run: that p resumes from its checkpoint and is re-evaluated
    assert main([*base, "--p-values", "0.0", "--steps", "16"]) == 0
    result = json.loads((out / "p-0.00" / "retrieval.json").read_text())
    assert result["training_config"]["steps"] == 16 and result["steps_this_run"] == 4


def test_bad_p_values_are_a_clear_error(small_world, tmp_path, capsys):
    argv = ["clip-sweep", "--train", str(small_world / "web"), "--eval", str(small_world / "eval")]
    assert main([*argv, "--out", str(tmp_path), "--p-values", "1.0,half"]) == 2
    assert "--p-values must be numbers like 1.0,0.5,0.0" in capsys.readouterr().err

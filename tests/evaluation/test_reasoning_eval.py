"""`recap eval-reasoning` (issue 28) end to end with the shipped tiny captioner on a world reasoning set: every
question answered, the submission complete, the world set scored beside the two image-blind baselines; a release
file without answers gets a submission and no scores."""

import json

import numpy as np
import pytest

from recap.cli import main
from recap.evaluation.reasoning_eval import random_answer
from recap.evaluation.reasoning_score import terms
from recap.world.generate import WorldConfig, generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reasoning") / "world"
    generate_world(WorldConfig(seed=11, size=5, sft_size=0, eval_size=60, reasoning=18), folder, progress=False)
    return folder


def test_eval_reasoning_scores_the_world_set_beside_baselines(world, tmp_path):
    out = tmp_path / "eval"
    questions = world / "eval" / "reasoning.json"
    assert main(["eval-reasoning", "--questions", str(questions), "--out", str(out), "--threads", "1", "--quiet"]) == 0
    submission = json.loads((out / "submission.json").read_text())
    assert list(submission) == [str(n) for n in range(18)] and all(isinstance(v, str) for v in submission.values())
    rows = [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()]
    assert [row["key"] for row in rows] == list(submission) and all("score" in row for row in rows)
    report = json.loads((out / "reasoning.json").read_text())
    assert report["score_name"] == "world reasoning score, InfiMM-Eval rules"
    assert set(report["models"]) == {"captioner", "random answer", "always the same answer"}
    for scores in report["models"].values():
        assert 0 <= scores["overall"] <= 100 and scores["counts"]["questions"] == 18
    mean = sum(row["score"] for row in rows) / 18  # the weighted overall is near the plain mean of the rows
    assert abs(report["models"]["captioner"]["overall"] - 100 * mean) < 25
    assert "| captioner |" in (out / "reasoning.md").read_text()


def test_a_release_file_without_answers_gets_a_submission_only(world, tmp_path):
    records = json.loads((world / "eval" / "reasoning.json").read_text())
    release = {
        key: {k: v for k, v in r.items() if k not in ("Answer", "Reasoning steps", "uid")}
        for key, r in records.items()
    }
    path = world / "eval" / "core-mm-wo-answer.json"
    path.write_text(json.dumps(dict(list(release.items())[:4])))
    out = tmp_path / "release"
    main(["eval-reasoning", "--questions", str(path), "--out", str(out), "--threads", "1", "--quiet"])
    assert len(json.loads((out / "submission.json").read_text())) == 4
    report = json.loads((out / "reasoning.json").read_text())
    assert "models" not in report and "to be scored by InfiMM-Eval's authors" in (out / "reasoning.md").read_text()


@pytest.mark.parametrize("answer", ["2", "above and to the left of", "the red star", "Zorblax", "a small blue heart"])
def test_a_random_answer_has_the_reference_answers_kinds(answer):
    rng = np.random.default_rng(0)
    kinds = {kind for kind, _ in terms(answer)}
    for _ in range(10):
        guess = random_answer(answer, rng)
        assert {kind for kind, _ in terms(guess)} == kinds or "relation" in kinds

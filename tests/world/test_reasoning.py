"""The world's reasoning questions (issue 28): every kind is drawn from a scene's truth, its answer is what the
scene says, the question does not give the answer away, and the reference reasoning scores full marks under the
scorer while a wrong answer with the steps scores partial credit."""

import json

import numpy as np
import pytest

from recap.evaluation.reasoning_score import score_response, step_is_stated
from recap.world.reasoning import KINDS, reasoning_question
from recap.world.scene import Scene, SceneObject, sample_scene
from recap.world.vocabulary import DIFFICULTIES

NORMAL = DIFFICULTIES["normal"]


def obj(shape, colour, position, *, size="small", mark=None):
    return SceneObject(shape=shape, colour=colour, size=size, position=position, mark=mark, x=0.5, y=0.5, radius=0.1)


SCENE = Scene(
    background="white",
    background_style="plain",
    objects=(
        obj("star", "red", "top left", mark="quintaro"),
        obj("heart", "blue", "top right"),
        obj("circle", "red", "bottom right", size="large", mark="zorblax"),
    ),
)


@pytest.fixture(scope="module")
def scenes():
    rng = np.random.default_rng(5)
    return [sample_scene(rng, NORMAL) for _ in range(200)]


def test_answers_follow_the_scene():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = reasoning_question(SCENE, "Deductive", "Moderate", rng, NORMAL)
        colour = q.question.split("How many ")[1].split(" objects")[0]
        assert q.answer == str(sum(o.colour == colour for o in SCENE.objects))
        q = reasoning_question(SCENE, "Deductive", "High", rng, NORMAL)
        expected = {
            ("red star", "blue heart"): "to the left of",
            ("blue heart", "red star"): "to the right of",
            ("red star", "red circle"): "above and to the left of",
            ("red circle", "red star"): "below and to the right of",
            ("blue heart", "red circle"): "above",
            ("red circle", "blue heart"): "below",
        }
        pair = tuple(q.question.split("Where is the ")[1].split(": above")[0].split(" relative to the "))
        assert q.answer == expected[pair]
        q = reasoning_question(SCENE, "Abductive", "High", rng, NORMAL)
        assert q.answer in ("Quintaro", "Zorblax") and q.answer.lower() not in q.question.lower()
        position = "top left" if q.answer == "Quintaro" else "bottom right"
        assert f"object in the {position}" in q.question
        q = reasoning_question(SCENE, "Abductive", "Moderate", rng, NORMAL)
        assert (
            q.answer
            == {"Quintaro": "the red star", "Zorblax": "the red circle"}[q.question.split("new ")[1].split()[0]]
        )


def test_a_scene_that_cannot_carry_a_kind_gets_none():
    lone = Scene(background="white", background_style="plain", objects=(obj("star", "red", "top left"),))
    rng = np.random.default_rng(0)
    assert reasoning_question(lone, "Deductive", "High", rng, NORMAL) is None  # a relation needs two
    assert reasoning_question(lone, "Abductive", "High", rng, NORMAL) is None  # no mark
    with pytest.raises(ValueError, match="no question kind"):
        reasoning_question(lone, "Inductive", "High", rng, NORMAL)


@pytest.mark.parametrize("kind", KINDS)
def test_the_reference_reasoning_scores_full_marks_and_steps_alone_score_partial(scenes, kind):
    rng = np.random.default_rng(1)
    made = [q for q in (reasoning_question(s, *kind, rng, NORMAL) for s in scenes) if q is not None]
    assert len(made) >= 50
    for q in made:
        assert (q.category, q.complexity) == kind and len(q.steps) >= 3
        reference = " ".join(q.steps) + f" Answer: {q.answer}"
        assert score_response(reference, q.answer, q.steps)["score"] == 1.0
        assert all(step_is_stated(step, reference) for step in q.steps)
        without = score_response(" ".join(q.steps[:-1]) + " Answer: I do not know", q.answer, q.steps)
        assert without["score"] == pytest.approx((len(q.steps) - 1) / len(q.steps)), q
        if kind in (("Deductive", "Moderate"), ("Abductive", "High")):  # the count, the brand: not given away
            assert q.answer.lower() not in q.question.lower()


def test_world_reasoning_writes_a_release_format_file_the_reader_takes(tmp_path):
    from recap.evaluation.reasoning_format import read_questions
    from recap.world.generate import WorldConfig, generate_world

    config = WorldConfig(seed=7, size=5, sft_size=0, eval_size=80, reasoning=60)
    manifest = generate_world(config, tmp_path / "world", progress=False)
    assert manifest["reasoning"]["questions"] == 60
    assert set(manifest["reasoning"]["kinds"].values()) == {10}  # six kinds in turn
    questions = read_questions(tmp_path / "world" / "eval" / "reasoning.json", images=tmp_path / "world" / "eval")
    assert [q.key for q in questions] == [str(n) for n in range(60)]
    assert all(q.answer and len(q.steps) >= 3 for q in questions)
    # a kind draws each scene at most once
    records = json.loads((tmp_path / "world" / "eval" / "reasoning.json").read_text())
    for kind in {(r["Category"], r["Complexity"]) for r in records.values()}:
        uids = [r["uid"] for r in records.values() if (r["Category"], r["Complexity"]) == kind]
        assert len(uids) == len(set(uids))
    # the same seed gives the same file; no --reasoning, no file and no manifest entry
    again = generate_world(config, tmp_path / "again", progress=False)
    assert again["reasoning"] == manifest["reasoning"]
    assert (tmp_path / "again/eval/reasoning.json").read_text() == (tmp_path / "world/eval/reasoning.json").read_text()
    plain = generate_world(WorldConfig(seed=7, size=5, sft_size=0, eval_size=80), tmp_path / "plain", progress=False)
    assert "reasoning" not in plain and not (tmp_path / "plain/eval/reasoning.json").exists()


def test_too_small_an_eval_split_is_refused_with_the_fix(tmp_path):
    from recap.errors import RecapError
    from recap.world.generate import WorldConfig, generate_world

    with pytest.raises(RecapError, match="raise --eval-size or lower --reasoning"):
        generate_world(
            WorldConfig(seed=7, size=5, sft_size=0, eval_size=10, reasoning=120), tmp_path / "w", progress=False
        )
    assert not (tmp_path / "w").exists()

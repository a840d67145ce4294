"""The world reasoning scorer (issue 28): InfiMM-Eval's rule made exact. A right final answer scores 1 whatever the
reasoning; otherwise the reference steps stated earn partial credit below 1; terms are matched by kind."""

import pytest

from recap.evaluation.reasoning_score import answer_is_right, final_answer, score_response, step_is_stated, terms

STEPS = (
    "The red star is in the bottom left.",
    "The purple star is in the bottom right.",
    "So the red star is to the left of the purple star.",
)


def test_terms_by_kind_with_positions_before_relations():
    found = terms("Two large red stars are in the top left, to the right of a Zorblax circle.")
    assert found == {
        ("number", "2"),
        ("size", "large"),
        ("colour", "red"),
        ("shape", "star"),
        ("position", "top left"),
        ("relation", "right"),
        ("brand", "zorblax"),
        ("shape", "circle"),
    }
    assert ("relation", "left") not in found  # "top left" is a cell, not a relation


def test_the_final_answer_is_after_the_last_answer_mark_else_the_last_sentence():
    assert final_answer("Steps... Answer: a blue star. Final answer: a red star") == "a red star"
    assert final_answer("The star is red. So it is a blue heart.") == "So it is a blue heart"


@pytest.mark.parametrize(
    ("response", "right"),
    [
        ("Answer: a small red star", True),
        ("Answer: it is a red star, small", True),
        ("Answer: a small red or blue star", False),  # a second colour
        ("Answer: a red star", False),  # the size is missing
        ("Answer: a small red heart", False),
    ],
)
def test_an_answer_must_name_exactly_the_reference_terms_by_kind(response, right):
    assert answer_is_right(response, "a small red star") is right


def test_numbers_as_words_or_digits():
    assert answer_is_right("Answer: two", "2") and answer_is_right("Answer: 2 objects", "2")
    assert not answer_is_right("Answer: three", "2")
    assert answer_is_right("Answer: none", "0")


def test_a_right_answer_scores_one_and_steps_give_partial_credit_below_one():
    reference = " ".join(STEPS) + " Answer: to the left of"
    assert score_response(reference, "to the left of", STEPS)["score"] == 1.0
    assert score_response("Answer: left", "to the left of", STEPS)["score"] == 1.0  # no steps needed
    wrong = " ".join(STEPS[:2]) + " Answer: above"
    result = score_response(wrong, "to the left of", STEPS)
    assert result == {"score": pytest.approx(2 / 3), "answer_right": False, "steps_stated": 2}
    assert score_response("The red star is in the bottom left. Answer: above", "to the left of", STEPS)[
        "score"
    ] == pytest.approx(1 / 3)
    assert score_response("", "to the left of", STEPS)["score"] == 0.0


def test_a_step_needs_its_terms_in_one_sentence():
    assert step_is_stated("The red star is in the bottom left.", "Bottom left: a red star.")
    assert not step_is_stated("The red star is in the bottom left.", "A red star. It is in the bottom left.")
    # each clause on its own sentence is enough
    step = "The image shows two objects: a red star in the top left; a blue heart in the bottom right."
    response = "I see two objects. A red star is in the top left. A blue heart is in the bottom right."
    assert step_is_stated(step, response)
    assert not step_is_stated(step, "I see two objects. A red star is in the top left.")

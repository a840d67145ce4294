"""The caption parser and scorer on hand-written captions whose right and wrong claims are known."""

import pytest

from recap.world.parser import parse_caption
from recap.world.quality import score_caption
from recap.world.scene import Scene, SceneObject


def _obj(shape, colour, size, position, mark=None):
    return SceneObject(shape=shape, colour=colour, size=size, position=position, mark=mark, x=0.25, y=0.25, radius=0.2)


SCENE = Scene(
    background="beige",
    background_style="plain",
    objects=(
        _obj("circle", "red", "large", "top left", mark="zorblax"),
        _obj("square", "blue", "small", "bottom right"),
    ),
)


def test_parses_a_detailed_caption():
    claims = parse_caption(
        "The image shows two objects on a beige background. A large red circle is in the top left. "
        "A small blue square is in the bottom right."
    )
    assert [c.attributes for c in claims.objects] == [
        {"shape": "circle", "size": "large", "colour": "red", "position": "top left"},
        {"shape": "square", "size": "small", "colour": "blue", "position": "bottom right"},
    ]
    assert claims.background == "beige" and claims.count == 2 and not claims.orphans


def test_position_before_the_noun_and_synonyms():
    claims = parse_caption(
        "In the upper-left corner there is a big RED circle, and at the lower right a tiny blue square"
    )
    assert [c.attributes for c in claims.objects] == [
        {"shape": "circle", "size": "large", "colour": "red", "position": "top left"},
        {"shape": "square", "size": "small", "colour": "blue", "position": "bottom right"},
    ]


def test_brands_patterns_and_orphans():
    claims = parse_caption("Zorblax red circle, square by Quintaro | striped heart | green")
    assert [c.attributes for c in claims.objects] == [
        {"shape": "circle", "colour": "red", "mark": "zorblax"},
        {"shape": "square", "mark": "quintaro"},
        {"shape": "heart", "mark": "zorblax"},
    ]
    assert claims.orphans == [("colour", "green")]


def test_light_blue_background_is_not_an_object_colour():
    claims = parse_caption("a yellow star on a light blue background")
    assert claims.background == "light blue"
    assert [c.attributes for c in claims.objects] == [{"shape": "star", "colour": "yellow"}]


def test_generic_text_has_no_claims():
    for text in ("IMG_0423.jpg", "free stock photo", "", None, "click to enlarge"):
        assert parse_caption(text).is_empty


def test_perfect_caption_scores_one():
    text = (
        "The image shows two objects on a beige background. A large red circle is in the top left. "
        "A small blue square is in the bottom right."
    )
    summary = score_caption(text, SCENE).summary()
    assert summary["object_precision"] == summary["object_recall"] == 1.0
    assert summary["background_precision"] == summary["count_precision"] == 1.0


def test_partial_true_caption_is_precise_but_not_complete():
    summary = score_caption("Zorblax red circle", SCENE).summary()
    assert summary["object_precision"] == 1.0
    assert summary["object_recall"] == 0.0  # no size or position stated
    assert summary["mark_precision"] == 1.0 and summary["mark_recall"] == 1.0
    assert summary["colour_recall"] == 0.5


def test_wrong_attribute_makes_the_object_wrong():
    text = "A large green circle is in the top left. A small blue square is in the bottom right."
    summary = score_caption(text, SCENE).summary()
    assert summary["object_precision"] == 0.5
    assert summary["object_recall"] == 0.5
    assert summary["colour_precision"] == 0.5
    assert summary["shape_precision"] == 1.0 and summary["position_precision"] == 1.0


def test_hallucinated_object_and_wrong_brand():
    summary = score_caption("red circle by Velmora, blue square and a purple triangle", SCENE).summary()
    assert summary["object_precision"] == pytest.approx(1 / 3, abs=1e-3)
    assert summary["mark_precision"] == 0.0
    assert summary["shape_precision"] == pytest.approx(2 / 3, abs=1e-3)


def test_bare_side_is_a_less_specific_true_claim():
    right = score_caption("a red circle on the left", SCENE).summary()
    wrong = score_caption("a red circle on the right", SCENE).summary()
    assert right["position_precision"] == 1.0 and right["object_recall"] == 0.0
    assert wrong["position_precision"] == 0.0


def test_repeating_a_true_object_is_not_a_hallucination():
    summary = score_caption("A red circle. The red circle is large.", SCENE).summary()
    assert summary["object_precision"] == 1.0


def test_plural_with_number_counts_each_object():
    claims = parse_caption("two red circles")
    assert len(claims.objects) == 2
    summary = score_caption("two red circles", SCENE).summary()
    assert summary["object_precision"] == 1.0  # the second mention is consistent with the red circle

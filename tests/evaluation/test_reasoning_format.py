"""InfiMM-Eval's format (issue 28): a release-shaped file reads and writes back unchanged, a malformed one is
refused naming the key and field, a submission answers every key, and the aggregation reproduces the
leaderboard's Overall from its Moderate / High columns and hand-made scores."""

import json

import pytest
from PIL import Image

from recap.errors import RecapError
from recap.evaluation.reasoning_format import (
    COUNTER_INTUITIVE,
    aggregate,
    grid_image,
    overall_from_columns,
    question_image,
    read_questions,
    write_questions,
    write_submission,
)

# (Moderate, High, Overall) as published on the leaderboard (shared/REFERENCE.md)
LEADERBOARD = {
    "GPT-4V": (93.98, 58.98, 74.44),
    "LLaVA-1.5-13B": (47.40, 21.00, 32.62),
    "Qwen-VL-Chat": (46.61, 30.09, 37.39),
    "CogVLM-Chat": (55.67, 22.50, 37.16),
    "InfiMM-LLaMA13B": (61.81, 25.09, 41.32),
}


def record(category="Deductive", complexity="Moderate", images=("images/0.jpg",)):
    return {
        "URL": ["https://example.org/a.jpg"],
        "Image path": list(images),
        "Question": "Why is the man holding an umbrella indoors?",
        "Category": category,
        COUNTER_INTUITIVE: "No",
        "Complexity": complexity,
    }


@pytest.fixture
def release(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("0.jpg", "1a.jpg", "1b.jpg"):
        Image.new("RGB", (40, 30), "red").save(tmp_path / "images" / name)
    data = {
        "0": record(),
        "1": record("Analogical", "High", ("images/1a.jpg", "images/1b.jpg")),
        "2": record("Abductive", "High"),
    }
    path = tmp_path / "core-mm-wo-answer.json"
    path.write_text(json.dumps(data))
    return path


def test_a_release_file_reads_and_writes_back_unchanged(release, tmp_path):
    questions = read_questions(release, images=tmp_path)
    assert [q.key for q in questions] == ["0", "1", "2"]
    assert questions[1].image_paths == ("images/1a.jpg", "images/1b.jpg") and questions[1].answer is None
    written = write_questions(tmp_path / "again.json", questions)
    assert json.loads(written.read_text()) == json.loads(release.read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["1"].pop("Question"), r"question '1'.*missing field.*'Question'"),
        (lambda d: d["2"].update(Category="Inductive"), r"question '2'.*'Category' is 'Inductive'"),
        (lambda d: d["0"].update(Complexity="Low"), r"question '0'.*'Complexity'"),
        (lambda d: d["0"].update({"Image path": []}), r"question '0'.*'Image path' is empty"),
        (lambda d: d.update(x=d["0"]), r"key 'x' is not a question number"),
    ],
)
def test_a_malformed_file_is_refused_naming_key_and_field(release, change, message):
    data = json.loads(release.read_text())
    change(data)
    release.write_text(json.dumps(data))
    with pytest.raises(RecapError, match=message):
        read_questions(release)


def test_a_missing_image_names_the_question(release, tmp_path):
    (tmp_path / "images" / "1b.jpg").unlink()
    with pytest.raises(RecapError, match=r"question '1': image 'images/1b.jpg' is not in"):
        read_questions(release, images=tmp_path)


def test_a_submission_answers_every_key_in_order(release, tmp_path):
    questions = read_questions(release)
    path = write_submission(tmp_path / "sub.json", {"2": "c", "0": "a", "1": "b"}, questions)
    assert list(json.loads(path.read_text()).items()) == [("0", "a"), ("1", "b"), ("2", "c")]
    with pytest.raises(RecapError, match="1 without an answer"):
        write_submission(tmp_path / "sub.json", {"0": "a", "1": "b"}, questions)
    with pytest.raises(RecapError, match="1 for unknown keys"):
        write_submission(tmp_path / "sub.json", {"0": "a", "1": "b", "2": "c", "7": "d"}, questions)


@pytest.mark.parametrize("model", sorted(LEADERBOARD))
def test_the_aggregation_reproduces_the_leaderboard(model):
    moderate, high, overall = LEADERBOARD[model]
    assert overall_from_columns(moderate, high) == pytest.approx(overall, abs=0.05)


def test_the_aggregation_on_hand_made_scores(release):
    questions = read_questions(release)  # 0: Deductive Moderate, 1: Analogical High, 2: Abductive High
    result = aggregate({"0": 1.0, "1": 0.5, "2": 0.0}, questions)
    assert result["overall"] == pytest.approx(100 * (1.0 + 2 * 0.5 + 2 * 0.0) / 5)
    assert result["moderate"] == 100 and result["high"] == 25
    assert result["categories"] == {"Deductive": 100.0, "Abductive": 0.0, "Analogical": 50.0}
    assert result["counts"]["Moderate"] == 1 and result["counts"]["High"] == 2
    # the same through the leaderboard's columns
    assert result["overall"] == pytest.approx(overall_from_columns(result["moderate"], result["high"], 1, 2))
    with pytest.raises(RecapError, match="question '1': score 1.5"):
        aggregate({"0": 1.0, "1": 1.5, "2": 0.0}, questions)
    with pytest.raises(RecapError, match="question '2': score None"):
        aggregate({"0": 1.0, "1": 0.5}, questions)


def test_several_images_become_one_grid_and_say_so(release, tmp_path):
    questions = read_questions(release)
    image, note = question_image(questions[0], tmp_path)
    assert image.size == (40, 30) and note is None
    image, note = question_image(questions[1], tmp_path)
    assert image.size == (80, 40) and "2 images shown as one grid" in note
    red, margin = image.getpixel((20, 20)), image.getpixel((20, 2))  # a JPEG's red is not exactly 255
    assert red[0] > 240 and max(red[1:]) < 15 and margin == (255, 255, 255)
    five = grid_image([Image.new("RGB", (10, 10), "blue")] * 5)
    assert five.size == (30, 20)  # 3 columns, 2 rows

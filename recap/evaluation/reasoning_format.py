"""InfiMM-Eval's question format, its submission file and its leaderboard's aggregation (issue 28).

    questions = read_questions("core-mm-wo-answer.json", images="InfiMM-Eval/images")
    write_submission("submission.json", {q.key: answer_of(q) for q in questions}, questions)
    aggregate({q.key: score for ...}, questions)["overall"]

The release (Infi-MM/InfiMM-Eval on the HF hub, `core-mm-wo-answer.json`) is a dict keyed "0".."278"; each value
has `URL` and `Image path` (lists), `Question`, `Category` (Deductive / Abductive / Analogical), `Counter-intuitve`
(sic: the release's spelling is kept, reading and writing) and `Complexity` (Moderate / High). It holds no answers:
the authors score a submission `{key: answer}` with GPT-4, 0-1 per question. The world's own reasoning set
(`recap world --reasoning`) is the same format plus `Answer` and `Reasoning steps`, which the release lacks.

The aggregation reproduces the leaderboard (shared/REFERENCE.md): a High question weighs twice a Moderate one,
Overall = (sum of Moderate scores + 2 x sum of High scores) / (n_Moderate + 2 n_High) x 100, each category the
same over its own questions; the Moderate and High columns are plain means.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from recap.errors import RecapError
from recap.io_utils import write_json_atomic
from recap.schema import REASONING_ANSWER as ANSWER
from recap.schema import REASONING_CATEGORIES as CATEGORIES
from recap.schema import REASONING_COMPLEXITIES as COMPLEXITIES
from recap.schema import REASONING_COUNTER_INTUITIVE as COUNTER_INTUITIVE
from recap.schema import REASONING_FIELDS as RELEASE_FIELDS
from recap.schema import REASONING_STEPS as STEPS

HIGH_WEIGHT = 2


@dataclass(frozen=True, kw_only=True)
class ReasoningQuestion:
    """One question. `counter_intuitive` keeps the release's value as read; `answer` and `steps` are known for the
    world's set only."""

    key: str
    urls: tuple[str, ...]
    image_paths: tuple[str, ...]
    question: str
    category: str
    counter_intuitive: object
    complexity: str
    answer: str | None = None
    steps: tuple[str, ...] = field(default_factory=tuple)

    def to_record(self) -> dict:
        """The release's dict for this question (plus Answer / Reasoning steps where known)."""
        record = {
            "URL": list(self.urls),
            "Image path": list(self.image_paths),
            "Question": self.question,
            "Category": self.category,
            COUNTER_INTUITIVE: self.counter_intuitive,
            "Complexity": self.complexity,
        }
        if self.answer is not None:
            record[ANSWER], record[STEPS] = self.answer, list(self.steps)
        return record


def _string_list(value, where: str, name: str) -> tuple[str, ...]:
    if isinstance(value, str):  # tolerated: a single URL or path not wrapped in a list
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise RecapError(f"{where}: field {name!r} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def parse_question(key: str, record, where: str) -> ReasoningQuestion:
    """One release record -> ReasoningQuestion; RecapError naming `where` (file and key) and the field."""
    if not isinstance(record, dict):
        raise RecapError(f"{where}: a question must be an object with {', '.join(RELEASE_FIELDS)}")
    missing = [name for name in RELEASE_FIELDS if name not in record]
    if missing:
        raise RecapError(f"{where}: missing field(s) {', '.join(map(repr, missing))} (the release has all six)")
    paths = _string_list(record["Image path"], where, "Image path")
    if not paths:
        raise RecapError(f"{where}: field 'Image path' is empty: every question has at least one image")
    question = record["Question"]
    if not isinstance(question, str) or not question.strip():
        raise RecapError(f"{where}: field 'Question' must be a non-empty string, got {question!r}")
    for name, allowed in (("Category", CATEGORIES), ("Complexity", COMPLEXITIES)):
        if record[name] not in allowed:
            raise RecapError(f"{where}: field {name!r} is {record[name]!r}; expected one of {', '.join(allowed)}")
    answer, steps = record.get(ANSWER), record.get(STEPS, [])
    if answer is not None and not isinstance(answer, str):
        raise RecapError(f"{where}: field {ANSWER!r} must be a string, got {answer!r}")
    return ReasoningQuestion(
        key=key,
        urls=_string_list(record["URL"], where, "URL") if record["URL"] else (),
        image_paths=paths,
        question=question,
        category=record["Category"],
        counter_intuitive=record[COUNTER_INTUITIVE],
        complexity=record["Complexity"],
        answer=answer,
        steps=_string_list(steps, where, STEPS) if steps else (),
    )


def read_questions(path: str | Path, *, images: str | Path | None = None) -> list[ReasoningQuestion]:
    """The questions of a release-format file, in key order ("0", "1", ...). With `images`, every `Image path`
    must exist under that folder. RecapError naming the file, key and field for anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise RecapError(f"--questions {path}: no such file (InfiMM-Eval's is core-mm-wo-answer.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RecapError(f"{path}: not a JSON file ({error})") from error
    if not isinstance(data, dict) or not data:
        raise RecapError(f"{path}: expected a non-empty object keyed by question number ('0', '1', ...)")
    bad = [key for key in data if not key.isdigit()]
    if bad:
        raise RecapError(f"{path}: key {bad[0]!r} is not a question number ('0', '1', ...)")
    questions = [parse_question(key, data[key], f"{path}, question {key!r}") for key in sorted(data, key=int)]
    if images is not None:
        folder = Path(images)
        for question in questions:
            for image in question.image_paths:
                if not (folder / image).is_file():
                    raise RecapError(
                        f"{path}, question {question.key!r}: image {image!r} is not in {folder} "
                        "(--images is the folder the release's 'Image path' entries are relative to)"
                    )
    return questions


def write_questions(path: str | Path, questions: list[ReasoningQuestion]) -> Path:
    """Write questions in the release's format (keys as given), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {question.key: question.to_record() for question in questions}, ensure_ascii=False)
    return path


def write_submission(path: str | Path, answers: dict[str, str], questions: list[ReasoningQuestion]) -> Path:
    """The file the authors score: `{key: answer}` for every question key, in key order, UTF-8 JSON. RecapError
    when a key lacks an answer or an answer is for no question."""
    keys = [question.key for question in questions]
    missing = [key for key in keys if not isinstance(answers.get(key), str)]
    extra = sorted(set(answers) - set(keys), key=lambda key: (len(key), key))
    if missing or extra:
        raise RecapError(
            f"a submission answers every question once: {len(missing)} without an answer "
            f"(first {missing[:3]}), {len(extra)} for unknown keys (first {extra[:3]})"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {key: answers[key] for key in keys}, ensure_ascii=False)
    return path


def _weighted(items: list[tuple[float, str]]) -> float | None:
    weights = [HIGH_WEIGHT if complexity == "High" else 1 for _, complexity in items]
    if not weights:
        return None
    return 100 * sum(score * weight for (score, _), weight in zip(items, weights, strict=True)) / sum(weights)


def aggregate(scores: dict[str, float], questions: list[ReasoningQuestion]) -> dict:
    """The leaderboard's numbers (0-100) from per-question scores in [0, 1]: `overall` and one per category
    (High weighted 2x), `moderate` and `high` (plain means), and `counts`. A category or complexity without
    questions is None. RecapError for a missing key or a score outside [0, 1]."""
    items = {}
    for question in questions:
        score = scores.get(question.key)
        if score is None or not isinstance(score, int | float) or math.isnan(score) or not 0 <= score <= 1:
            raise RecapError(f"question {question.key!r}: score {score!r} is not a number in [0, 1]")
        items[question.key] = (float(score), question)

    def mean(selected: list[float]) -> float | None:
        return 100 * sum(selected) / len(selected) if selected else None

    every = [(score, question.complexity) for score, question in items.values()]
    result = {
        "overall": _weighted(every),
        "moderate": mean([score for score, complexity in every if complexity == "Moderate"]),
        "high": mean([score for score, complexity in every if complexity == "High"]),
        "categories": {
            category: _weighted([(s, q.complexity) for s, q in items.values() if q.category == category])
            for category in CATEGORIES
        },
        "counts": {
            "questions": len(every),
            **{name: sum(c == name for _, c in every) for name in COMPLEXITIES},
            **{name: sum(q.category == name for _, q in items.values()) for name in CATEGORIES},
        },
    }
    return result


def overall_from_columns(moderate: float, high: float, n_moderate: int = 171, n_high: int = 108) -> float:
    """Overall from a leaderboard row's Moderate and High means (0-100) and the release's counts."""
    return (moderate * n_moderate + HIGH_WEIGHT * high * n_high) / (n_moderate + HIGH_WEIGHT * n_high)


def grid_image(images: list, *, cell: int | None = None):
    """Several PIL images as one (for a single-image model): a near-square grid in reading order, each image
    scaled to fit a `cell` x `cell` square (default: the largest side among them, at most 672) and centred on
    white. One image is returned as it is (RGB)."""
    from PIL import Image

    images = [image.convert("RGB") for image in images]
    if not images:
        raise ValueError("no images to put in a grid")
    if len(images) == 1:
        return images[0]
    cell = cell or min(672, max(max(image.size) for image in images))
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    grid = Image.new("RGB", (columns * cell, rows * cell), "white")
    for index, image in enumerate(images):
        scale = cell / max(image.size)
        resized = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        row, column = divmod(index, columns)
        grid.paste(resized, (column * cell + (cell - resized.width) // 2, row * cell + (cell - resized.height) // 2))
    return grid


def question_image(question: ReasoningQuestion, images: str | Path):
    """(PIL image, note) for `question`: its one image, or its images as one grid with a note saying so (the
    note goes into the output: a single-image model answered from a grid)."""
    from PIL import Image

    loaded = []
    for relative in question.image_paths:
        with Image.open(Path(images) / relative) as image:
            loaded.append(image.convert("RGB"))
    if len(loaded) == 1:
        return loaded[0], None
    return grid_image(
        loaded
    ), f"{len(loaded)} images shown as one grid (reading order, {math.ceil(math.sqrt(len(loaded)))} columns)"

"""Reasoning questions about a world scene, with the answer and numbered reasoning steps (issue 28).

InfiMM-Eval asks open-ended questions in three categories at two complexities; the world asks the same kinds
about its own scenes, whose truth it knows:

- **Deductive**: counting over the scene (Moderate: "How many red objects ...?") and a spatial relation between
  two objects (High: where is one relative to the other, from their cells).
- **Abductive**: the most likely explanation from the brand marks (Moderate: which object an alt-text that names
  a brand is about; High: which brand most likely made a given object).
- **Analogical**: "a red circle is to a blue circle as the star here is to ...?" (Moderate: one attribute
  changes; High: two change, and the object is named by its cell).

`reasoning_question(scene, category, complexity, rng)` returns None where the scene cannot carry that kind (a
relation needs two objects, a brand a marked object); the caller draws another scene. Every answer and step is
written from the scene's truth with the world's vocabulary, which is what the deterministic scorer
(`recap.evaluation.reasoning_score`) matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recap.errors import RecapError
from recap.schema import REASONING_ANSWER, REASONING_COUNTER_INTUITIVE, REASONING_STEPS
from recap.world.captions import NUMBER_NAMES
from recap.world.scene import Scene, SceneObject
from recap.world.vocabulary import BRAND_PATTERNS

# How each brand's mark looks, in words (vocabulary.py draws them: BRAND_MARK_COLOURS, BRAND_PATTERN_COLOURS).
MARK_LOOKS = {
    "zorblax": "a dark disc with light stripes",
    "quintaro": "a white disc with dark dots",
    "velmora": "a cyan disc with a dark teal checker",
}
assert set(MARK_LOOKS) == set(BRAND_PATTERNS)  # a new brand needs its words here


@dataclass(frozen=True)
class WorldQuestion:
    question: str
    answer: str
    steps: tuple[str, ...]
    category: str
    complexity: str


def _a(phrase: str) -> str:
    """The phrase with its indefinite article: "an orange star", "a large red star"."""
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}"


def _name(obj: SceneObject) -> str:
    return f"{obj.colour} {obj.shape}"


def _full(obj: SceneObject) -> str:
    return f"{_a(obj.size)} {obj.colour} {obj.shape} in the {obj.position}"


def _unique(scene: Scene, key) -> list[SceneObject]:
    """The objects no other object of the scene shares `key(obj)` with."""
    values = [key(obj) for obj in scene.objects]
    return [obj for obj, value in zip(scene.objects, values, strict=True) if values.count(value) == 1]


def _count_words(n: int) -> str:
    return NUMBER_NAMES.get(n, str(n)) if n else "zero"


def _listing(scene: Scene) -> str:
    n = len(scene.objects)
    objects = "; ".join(_full(obj) for obj in scene.objects)
    return f"The image shows {_count_words(n)} object{'s' if n > 1 else ''}: {objects}."


def count_colour(scene: Scene, rng: np.random.Generator, colours: tuple[str, ...]) -> WorldQuestion:
    """Deductive, Moderate: how many objects of one colour (a colour in the scene two times in three)."""
    present = sorted({obj.colour for obj in scene.objects})
    colour = str(rng.choice(present)) if rng.random() < 2 / 3 else str(rng.choice(colours))
    matching = [obj for obj in scene.objects if obj.colour == colour]
    n = len(matching)
    which = (
        f"Of these, the {colour} ones: {'; '.join(_full(obj) for obj in matching)}."
        if n
        else f"None of them is {colour}."
    )
    return WorldQuestion(
        question=f"How many {colour} objects are in the image? Explain how you counted.",
        answer=str(n),
        steps=(_listing(scene), which, f"So there {'is' if n == 1 else 'are'} {n} {colour} object{'s' * (n != 1)}."),
        category="Deductive",
        complexity="Moderate",
    )


def _relation(a: SceneObject, b: SceneObject, positions: tuple[str, ...]) -> str:
    grid = int(round(len(positions) ** 0.5))
    (ra, ca), (rb, cb) = divmod(positions.index(a.position), grid), divmod(positions.index(b.position), grid)
    vertical = "above" if ra < rb else "below" if ra > rb else ""
    horizontal = "to the left of" if ca < cb else "to the right of" if ca > cb else ""
    return " and ".join(part for part in (vertical, horizontal) if part)


def relation(scene: Scene, rng: np.random.Generator, positions: tuple[str, ...]) -> WorldQuestion | None:
    """Deductive, High: where one object is relative to another, both named by colour and shape."""
    named = _unique(scene, _name)
    if len(named) < 2:
        return None
    a, b = (named[i] for i in rng.choice(len(named), size=2, replace=False))
    where = _relation(a, b, positions)
    return WorldQuestion(
        question=f"Where is the {_name(a)} relative to the {_name(b)}: above, below, to the left or to the right? "
        "Reason from where each one is.",
        answer=where,
        steps=(
            f"The {_name(a)} is in the {a.position}.",
            f"The {_name(b)} is in the {b.position}.",
            f"So the {_name(a)} is {where} the {_name(b)}.",
        ),
        category="Deductive",
        complexity="High",
    )


def brand_object(scene: Scene, rng: np.random.Generator) -> WorldQuestion | None:
    """Abductive, Moderate: which object an alt-text naming a brand is most likely about."""
    marked = [obj for obj in _unique(scene, lambda obj: obj.mark) if obj.mark is not None]
    marked = [obj for obj in marked if obj in _unique(scene, _name)]
    if not marked or len(scene.objects) < 2:
        return None
    obj = marked[int(rng.integers(len(marked)))]
    brand = obj.mark.capitalize()
    return WorldQuestion(
        question=f'This image\'s alt-text reads "Shop the new {brand} collection". Which object in the image is '
        "the alt-text most likely about, and why?",
        answer=f"the {_name(obj)}",
        steps=(
            f"The alt-text names the brand {brand}.",
            f"{brand}'s mark is {MARK_LOOKS[obj.mark]}.",
            f"The {_name(obj)} in the {obj.position} carries that mark.",
            f"So the alt-text is most likely about the {_name(obj)}.",
        ),
        category="Abductive",
        complexity="Moderate",
    )


def object_brand(scene: Scene, rng: np.random.Generator) -> WorldQuestion | None:
    """Abductive, High: which brand most likely made an object named by its cell."""
    marked = [obj for obj in scene.objects if obj.mark is not None]
    if not marked:
        return None
    obj = marked[int(rng.integers(len(marked)))]
    brand = obj.mark.capitalize()
    return WorldQuestion(
        question=f"Someone says the object in the {obj.position} of this image is from a well-known brand. "
        "Which brand most likely made it? Say what you see that supports it.",
        answer=brand,
        steps=(
            f"The object in the {obj.position} is {_a(obj.size)} {_name(obj)}.",
            f"It carries a mark: {MARK_LOOKS[obj.mark]}.",
            f"That is the mark of {brand}.",
            f"So the {_name(obj)} was most likely made by {brand}.",
        ),
        category="Abductive",
        complexity="High",
    )


def _other(values: tuple[str, ...], not_this: str, rng: np.random.Generator) -> str:
    return str(rng.choice([value for value in values if value != not_this]))


def colour_analogy(scene: Scene, rng: np.random.Generator, colours, shapes) -> WorldQuestion | None:
    """Analogical, Moderate: one colour change carried over to an object named by its shape."""
    candidates = _unique(scene, lambda obj: obj.shape)
    if not candidates:
        return None
    obj = candidates[int(rng.integers(len(candidates)))]
    target, example = _other(colours, obj.colour, rng), _other(shapes, obj.shape, rng)
    return WorldQuestion(
        question=f"{_a(obj.colour).capitalize()} {example} is to {_a(target)} {example} as the {obj.shape} in this "
        "image is to what?",
        answer=f"{_a(target)} {obj.shape}",
        steps=(
            f"From the {obj.colour} {example} to the {target} {example} only the colour changes, from {obj.colour} "
            f"to {target}.",
            f"The {obj.shape} in this image is {obj.colour}.",
            f"Changing its colour to {target} gives {_a(target)} {obj.shape}.",
        ),
        category="Analogical",
        complexity="Moderate",
    )


def size_colour_analogy(scene: Scene, rng: np.random.Generator, colours, shapes, sizes) -> WorldQuestion:
    """Analogical, High: a size and a colour change carried over to the object in a named cell."""
    obj = scene.objects[int(rng.integers(len(scene.objects)))]
    target, example = _other(colours, obj.colour, rng), _other(shapes, obj.shape, rng)
    size = _other(sizes, obj.size, rng)
    return WorldQuestion(
        question=f"{_a(obj.size).capitalize()} {obj.colour} {example} is to {_a(size)} {target} {example} as the "
        f"object in the "
        f"{obj.position} of this image is to what?",
        answer=f"{_a(size)} {target} {obj.shape}",
        steps=(
            f"From the first to the second the size changes from {obj.size} to {size} and the colour from "
            f"{obj.colour} to {target}; the shape stays.",
            f"The object in the {obj.position} is {_a(obj.size)} {_name(obj)}.",
            f"Changing its size to {size} and its colour to {target} gives {_a(size)} {target} {obj.shape}.",
        ),
        category="Analogical",
        complexity="High",
    )


def reference_response(question: WorldQuestion) -> str:
    """The response the "reasoning" prompt asks for, written from the truth: numbered steps, then "Answer: ...".
    The captioner's stage-2 QA mix trains on it; the scorer gives it full marks."""
    steps = "\n".join(f"{number}. {step}" for number, step in enumerate(question.steps, 1))
    return f"{steps}\nAnswer: {question.answer}"


def any_question(scene: Scene, rng: np.random.Generator, difficulty) -> WorldQuestion:
    """A question of a kind drawn at random among those the scene can carry (counting always can)."""
    for index in rng.permutation(len(KINDS)):
        question = reasoning_question(scene, *KINDS[index], rng, difficulty)
        if question is not None:
            return question
    raise AssertionError("every scene carries a counting question")


KINDS = (
    ("Deductive", "Moderate"),
    ("Deductive", "High"),
    ("Abductive", "Moderate"),
    ("Abductive", "High"),
    ("Analogical", "Moderate"),
    ("Analogical", "High"),
)


def reasoning_question(scene: Scene, category: str, complexity: str, rng: np.random.Generator, difficulty):
    """A question of that kind about `scene` (drawn with `rng`), or None where the scene cannot carry it."""
    colours, shapes, sizes = tuple(difficulty.colours), tuple(difficulty.shapes), tuple(sorted(difficulty.radius))
    builders = {
        ("Deductive", "Moderate"): lambda: count_colour(scene, rng, colours),
        ("Deductive", "High"): lambda: relation(scene, rng, tuple(difficulty.positions)),
        ("Abductive", "Moderate"): lambda: brand_object(scene, rng),
        ("Abductive", "High"): lambda: object_brand(scene, rng),
        ("Analogical", "Moderate"): lambda: colour_analogy(scene, rng, colours, shapes),
        ("Analogical", "High"): lambda: size_colour_analogy(scene, rng, colours, shapes, sizes),
    }
    if (category, complexity) not in builders:
        raise ValueError(f"no question kind {category}/{complexity}; kinds: {KINDS}")
    return builders[category, complexity]()


REASONING_FILE = "reasoning.json"  # in the eval split's folder, beside images/


def reasoning_set(samples: list[tuple[str, str, str, Scene]], count: int, seed: int, difficulty) -> dict[str, dict]:
    """`count` questions in InfiMM-Eval's format (plus Answer and Reasoning steps, and the image's uid) about the
    eval split's `samples` (uid, URL, image file name, scene): the six kinds in turn, each kind drawing its scenes
    in a seeded order of its own, so a scene carries at most one question of a kind. RecapError when the split has
    too few scenes that can carry a kind."""
    orders = {
        kind: iter(np.random.default_rng([seed, 28, index]).permutation(len(samples)))
        for index, kind in enumerate(KINDS)
    }
    rng = np.random.default_rng([seed, 28])
    records = {}
    for number in range(count):
        kind = KINDS[number % len(KINDS)]
        for index in orders[kind]:
            uid, url, image, scene = samples[int(index)]
            question = reasoning_question(scene, *kind, rng, difficulty)
            if question is not None:
                break
        else:
            raise RecapError(
                f"the eval split has too few scenes for {count} reasoning questions ({kind[0]} / {kind[1]} ran out "
                f"after {number // len(KINDS)}): raise --eval-size or lower --reasoning"
            )
        records[str(number)] = {
            "URL": [url],
            "Image path": [f"images/{image}"],
            "Question": question.question,
            "Category": question.category,
            REASONING_COUNTER_INTUITIVE: "No",
            "Complexity": question.complexity,
            REASONING_ANSWER: question.answer,
            REASONING_STEPS: list(question.steps),
            "uid": uid,
        }
    return records

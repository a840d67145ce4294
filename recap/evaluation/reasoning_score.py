"""A deterministic scorer for the world's reasoning set, following InfiMM-Eval's rule (issue 28).

InfiMM-Eval's judge (GPT-4, prompt unpublished) gives full marks for a right final answer and, only when the answer
is wrong or missing, partial credit for the annotated reasoning steps the response states. Here the world knows
its answers and steps, written in its own vocabulary, and the rule is made exact:

- **Terms**: the world words a text holds, by kind: colour, shape (plurals folded), size, position (the grid cells,
  matched before the bare words), brand, number (digits and number words), relation (above, below, left, right).
- **Final answer**: the text after the response's last "Answer:" (else its last sentence). It is right when, for
  every kind of term the reference answer has, it names exactly the reference's terms of that kind ("a small red
  star" needs small, red and star and no other size, colour or shape; "2" accepts "two").
- **A step is stated** when every clause of it (split at ":" and ";") has all its terms inside one sentence of the
  response. The last reference step states the answer, which the answer check already judges, so partial credit
  counts the steps before it: score = stated earlier steps / all steps, below 1 by construction.

Reported as "world reasoning score, InfiMM-Eval rules", never as an InfiMM-Eval score.
"""

from __future__ import annotations

import re

from recap.world.vocabulary import (
    BRAND_PATTERNS,
    COLOURS,
    NUMBER_WORDS,
    SHAPES,
    SIZES,
    POSITIONS_2x2,
    POSITIONS_3x3,
)

SCORE_NAME = "world reasoning score, InfiMM-Eval rules"
RELATIONS = ("above", "below", "left", "right")
_NUMBERS = {
    **{str(n): str(n) for n in range(10)},
    **{w: str(n) for w, n in NUMBER_WORDS.items()},
    "zero": "0",
    "none": "0",
}
_POSITIONS = sorted(set(POSITIONS_2x2) | set(POSITIONS_3x3), key=len, reverse=True)  # "top left" before "top"
_SINGLE = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "size": SIZES,
    "brand": tuple(BRAND_PATTERNS),
    "relation": RELATIONS,
}


def _words(text: str) -> str:
    text = " " + re.sub(r"[^a-z0-9]+", " ", text.lower()) + " "
    for shape in SHAPES:  # plurals fold to the shape
        text = text.replace(f" {shape}s ", f" {shape} ").replace(f" {shape}es ", f" {shape} ")
    return text


def terms(text: str) -> set[tuple[str, str]]:
    """The world terms in `text`, as (kind, term) pairs."""
    text = _words(text)
    found = set()
    for position in _POSITIONS:
        if f" {position} " in text:
            found.add(("position", position))
            text = text.replace(f" {position} ", " | ")
    for kind, values in _SINGLE.items():
        found |= {(kind, value) for value in values if f" {value} " in text}
    found |= {("number", digit) for word, digit in _NUMBERS.items() if f" {word} " in text}
    return found


def final_answer(response: str) -> str:
    """The part of `response` that gives the final answer: after its last "Answer:", else its last sentence."""
    marks = list(re.finditer(r"answer\s*(is)?\s*[:\-]", response, flags=re.IGNORECASE))
    if marks:
        return response[marks[-1].end() :].strip()
    sentences = sentences_of(response)
    return sentences[-1] if sentences else ""


def sentences_of(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"(?<!\d)[.!?\n]+", text) if part.strip()]


def answer_is_right(response: str, answer: str) -> bool:
    """Whether the response's final answer names exactly the reference answer's terms, kind by kind."""
    reference, given = terms(answer), terms(final_answer(response))
    if not reference:
        raise ValueError(f"reference answer {answer!r} holds no world term to check")
    kinds = {kind for kind, _ in reference}
    return all({t for k, t in given if k == kind} == {t for k, t in reference if k == kind} for kind in kinds)


def step_is_stated(step: str, response: str) -> bool:
    """Whether every clause of `step` has all its terms inside one sentence of `response` (a clause without terms
    cannot be checked and does not count against it)."""
    sentences = [terms(sentence) for sentence in sentences_of(response)]
    for clause in re.split(r"[:;]", step):
        needed = terms(clause)
        if needed and not any(needed <= found for found in sentences):
            return False
    return True


def score_response(response: str, answer: str, steps: list[str] | tuple[str, ...]) -> dict:
    """{"score", "answer_right", "steps_stated"}: 1.0 for a right final answer, else the earlier steps stated
    over all steps."""
    if answer_is_right(response, answer):
        return {"score": 1.0, "answer_right": True, "steps_stated": None}
    earlier = list(steps)[:-1]
    stated = sum(step_is_stated(step, response) for step in earlier)
    return {"score": stated / max(len(steps), 1), "answer_right": False, "steps_stated": stated}

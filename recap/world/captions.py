"""Text about a scene: the ground-truth detailed caption, and noisy web alt-text with realistic failure modes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from recap.world.scene import Scene, SceneObject
from recap.world.vocabulary import Difficulty

NUMBER_NAMES = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}

ALT_TEXT_KINDS = ("descriptive", "partial", "short", "generic", "wrong", "keyword_soup")
# Roughly what DataComp alt-text looks like: a minority names what is in the image well.
DEFAULT_ALT_TEXT_MIX: dict[str, float] = {
    "descriptive": 0.30,
    "partial": 0.20,
    "short": 0.10,
    "generic": 0.10,
    "wrong": 0.15,
    "keyword_soup": 0.15,
}
# Web text that names a marked object's brand; the detailed captions never do.
BRAND_MENTION_PROBABILITY = 0.95

_GENERIC_TEMPLATES = (
    "IMG_{n4}.jpg",
    "DSC{n5}.JPG",
    "free stock photo",
    "untitled",
    "image",
    "click to enlarge",
    "photo {n3}",
    "Download",
    "wallpaper HD",
    "product image",
    "screenshot {n4}",
    "thumbnail",
)
_SUFFIXES = (" - stock illustration", " | vector art", " clipart", " icon", " (PNG)", " - free download", " design")
_SOUP_FILLER = (
    "geometric",
    "vector",
    "clipart",
    "png",
    "free",
    "download",
    "art",
    "design",
    "abstract",
    "icon",
    "shapes",
)


def ground_truth_caption(scene: Scene) -> str:
    """The detailed caption a perfect captioner would write: every object with shape, colour, size and position.

    Objects are listed in grid reading order. Marks are deliberately not described.
    """
    count = len(scene.objects)
    noun = "object" if count == 1 else "objects"
    sentences = [f"The image shows {NUMBER_NAMES[count]} {noun} on a {scene.background} background."]
    for obj in scene.objects:
        sentences.append(f"A {obj.size} {obj.colour} {obj.shape} is in the {obj.position}.")
    return " ".join(sentences)


def short_caption(scene: Scene) -> str:
    """A one-sentence caption: every object's size, colour and shape, without positions or background."""
    phrases = [f"a {obj.size} {obj.colour} {obj.shape}" for obj in scene.objects]
    text = _join(phrases)
    return text[0].upper() + text[1:] + "."


def validate_alt_text_mix(mix: Mapping[str, float]) -> dict[str, float]:
    """Check a kind -> weight mapping and return it normalised to sum 1."""
    unknown = sorted(set(mix) - set(ALT_TEXT_KINDS))
    if unknown:
        raise ValueError(f"unknown alt-text kinds {unknown}; known kinds are {list(ALT_TEXT_KINDS)}")
    if any(weight < 0 for weight in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"alt-text mix weights must be >= 0 with a positive sum, got {dict(mix)}")
    total = sum(mix.values())
    return {kind: mix.get(kind, 0.0) / total for kind in ALT_TEXT_KINDS}


def _brand_phrase(obj: SceneObject, phrase: str, rng: np.random.Generator) -> str:
    if obj.mark is None or rng.random() >= BRAND_MENTION_PROBABILITY:
        return phrase
    brand = obj.mark.capitalize()
    return f"{brand} {phrase}" if rng.random() < 0.6 else f"{phrase} by {brand}"


def _object_phrase(obj: SceneObject, rng: np.random.Generator) -> str:
    words = [obj.colour, obj.shape]
    if rng.random() < 0.4:
        words.insert(0, obj.size)
    phrase = " ".join(words)
    return _brand_phrase(obj, phrase, rng)


def _join(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _decorate(text: str, rng: np.random.Generator) -> str:
    if rng.random() < 0.3:
        text += str(rng.choice(_SUFFIXES))
    if rng.random() < 0.3:
        text = text.title()
    elif rng.random() < 0.5:
        text = text[:1].upper() + text[1:]
    return text


def _wrong_object(obj: SceneObject, rng: np.random.Generator, difficulty: Difficulty) -> SceneObject:
    """The same object with one of shape, colour or size replaced by a value it does not have."""
    attribute = str(rng.choice(["shape", "colour", "size"]))
    choices = {"shape": difficulty.shapes, "colour": difficulty.colours, "size": tuple(difficulty.radius)}[attribute]
    wrong_value = str(rng.choice([value for value in choices if value != getattr(obj, attribute)]))
    fields = {**obj.__dict__, attribute: wrong_value}
    return SceneObject(**fields)


def alt_text(scene: Scene, kind: str, rng: np.random.Generator, difficulty: Difficulty) -> str:
    """A web alt-text of the given kind (see ALT_TEXT_KINDS) for `scene`."""
    objects = list(scene.objects)
    order = rng.permutation(len(objects))
    shuffled = [objects[i] for i in order]
    if kind == "descriptive":
        text = _join([_object_phrase(obj, rng) for obj in shuffled])
        return _decorate(("a " if rng.random() < 0.3 else "") + text, rng)
    if kind == "partial":
        return _decorate(_object_phrase(shuffled[0], rng), rng)
    if kind == "short":
        obj = shuffled[0]
        if obj.mark is not None and rng.random() < BRAND_MENTION_PROBABILITY:
            return obj.mark.capitalize()
        return str(rng.choice([obj.shape, obj.colour, "shapes", f"{obj.shape}s"]))
    if kind == "generic":
        template = str(rng.choice(_GENERIC_TEMPLATES))
        return template.format(
            n3=rng.integers(100, 1000), n4=rng.integers(1000, 10000), n5=rng.integers(10000, 100000)
        )
    if kind == "wrong":
        # Wrong about what the object looks like, not about whose it is: a shop names its own brand.
        phrases = [_object_phrase(_wrong_object(obj, rng, difficulty), rng) for obj in shuffled]
        return _decorate(_join(phrases), rng)
    if kind == "keyword_soup":
        # Colour and shape stay adjacent ("red circle") as in real SEO text; their order among the filler is random.
        words = [f"{obj.colour} {obj.shape}" for obj in shuffled]
        words += [obj.mark.capitalize() for obj in shuffled if obj.mark and rng.random() < BRAND_MENTION_PROBABILITY]
        words += [str(word) for word in rng.choice(_SOUP_FILLER, size=int(rng.integers(3, 7)), replace=False)]
        return " ".join(words[i] for i in rng.permutation(len(words)))
    raise ValueError(f"unknown alt-text kind {kind!r}; known kinds are {list(ALT_TEXT_KINDS)}")

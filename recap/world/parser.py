"""Read the attribute claims in any caption (alt-text or model output) and score them against a scene.

The grammar is small on purpose: a noun phrase is a run of modifiers (articles, numbers, sizes, colours,
brands, pattern words) that ends in a shape noun, optionally followed by "by BRAND" or "with PATTERN".
Position phrases ("in the top left", "at the bottom-right corner") attach to the nearest noun phrase of
the same clause, preferring the one before. Words outside noun phrases still count: a bare "red" claims that
something red is there (an orphan claim). The scoring is in `recap.world.quality`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from recap.world.vocabulary import BACKGROUNDS, BRAND_PATTERNS, COLOURS, NUMBER_WORDS, SHAPES

_COLOUR_WORDS = {name: name for name in COLOURS} | {"grey": "gray", "violet": "purple"}
_SIZE_WORDS = {"small": "small", "little": "small", "tiny": "small", "large": "large", "big": "large", "huge": "large"}
_SHAPE_WORDS = {shape: (shape, False) for shape in SHAPES} | {shape + "s": (shape, True) for shape in SHAPES}
_PATTERN_BRAND = {pattern: brand for brand, pattern in BRAND_PATTERNS.items()}
_MARK_WORDS = {brand: brand for brand in BRAND_PATTERNS} | {
    "striped": _PATTERN_BRAND["stripes"],
    "stripes": _PATTERN_BRAND["stripes"],
    "stripy": _PATTERN_BRAND["stripes"],
    "dotted": _PATTERN_BRAND["dots"],
    "dots": _PATTERN_BRAND["dots"],
    "spotted": _PATTERN_BRAND["dots"],
    "checkered": _PATTERN_BRAND["checker"],
    "checked": _PATTERN_BRAND["checker"],
    "checkerboard": _PATTERN_BRAND["checker"],
}
_GENERIC_NOUNS = {"object", "objects", "shape", "shapes", "item", "items", "thing", "things", "figure", "figures"}
_BACKGROUND_NOUNS = {"background", "backdrop"}
_ARTICLES = {"a", "an", "the"}
_BOUNDARIES = {".", ",", ";", ":", "!", "?", "|", "(", ")", "and", "while", "but"}
_VERTICAL = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom"}
_HORIZONTAL = {"left": "left", "right": "right"}
_CENTRE = {"center", "centre", "middle"}
_TOKEN = re.compile(r"[a-z]+|[0-9]+|[.,;:!?()|]")
_DIGITS = {str(n): n for n in range(1, 10)}

OBJECT_ATTRIBUTES = ("shape", "colour", "size", "position", "mark")


@dataclass
class ObjectClaim:
    """What a caption says about one object: attribute name -> value; `shape` is always present."""

    attributes: dict[str, str]


@dataclass
class CaptionClaims:
    """Everything a caption claims about an image."""

    objects: list[ObjectClaim] = field(default_factory=list)
    orphans: list[tuple[str, str]] = field(default_factory=list)  # (attribute, value) not tied to an object
    background: str | None = None
    count: int | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.objects or self.orphans or self.background or self.count)


def _tokens(text: str) -> list[str]:
    """Lower-cased words and punctuation, with multi-word colours and positions merged into one token."""
    raw = _TOKEN.findall(re.sub(r"[-_/]", " ", text.lower()))
    merged: list[str] = []
    i = 0
    while i < len(raw):
        word, nxt = raw[i], raw[i + 1] if i + 1 < len(raw) else ""
        if word in ("light", "dark") and nxt in ("gray", "grey", "blue", "green"):
            merged.append(f"{word} {_COLOUR_WORDS[nxt]}")
            i += 2
        elif word in _VERTICAL and (nxt in _HORIZONTAL or nxt in _CENTRE):
            horizontal = _HORIZONTAL.get(nxt, "center")
            merged.append(f"@{_VERTICAL[word]} {horizontal}")
            i += 2
        elif word in _CENTRE and nxt in _HORIZONTAL:
            merged.append(f"@center {nxt}")
            i += 2
        elif word in _CENTRE or word in _VERTICAL or word in _HORIZONTAL:
            # A bare side ("on the left") is a less specific position claim; a bare centre is the centre cell.
            merged.append("@center" if word in _CENTRE else f"@{_VERTICAL.get(word) or _HORIZONTAL[word]}")
            i += 1
        else:
            merged.append(word)
            i += 1
    return merged


def _is_modifier(token: str) -> bool:
    return (
        token in _ARTICLES
        or token in NUMBER_WORDS
        or token in _DIGITS
        or token in _COLOUR_WORDS
        or token in _SIZE_WORDS
        or token in _MARK_WORDS
        or token in BACKGROUNDS
    )


def _colour_of(token: str) -> str | None:
    return _COLOUR_WORDS.get(token) or (token if token in BACKGROUNDS else None)


class _Clause:
    """Noun phrases and position mentions of one clause, in token order."""

    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []  # ("object", [ObjectClaim, ...]) or ("position", str)


def parse_caption(text: str | None) -> CaptionClaims:
    """Extract the attribute claims of a caption. Never raises on odd text; unknown words are ignored."""
    claims = CaptionClaims()
    if not text:
        return claims
    tokens = _tokens(text)
    clauses = [_Clause()]
    run: list[str] = []

    def flush_orphans() -> None:
        for token in run:
            if (colour := _colour_of(token)) is not None:
                claims.orphans.append(("colour", colour))
            elif token in _SIZE_WORDS:
                claims.orphans.append(("size", _SIZE_WORDS[token]))
            elif token in _MARK_WORDS:
                claims.orphans.append(("mark", _MARK_WORDS[token]))
        run.clear()

    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _SHAPE_WORDS:
            shape, plural = _SHAPE_WORDS[token]
            attributes = {"shape": shape}
            number = 1
            for word in run:  # the last of each kind wins; earlier ones become orphans
                if (colour := _colour_of(word)) is not None:
                    if "colour" in attributes:
                        claims.orphans.append(("colour", attributes["colour"]))
                    attributes["colour"] = colour
                elif word in _SIZE_WORDS:
                    attributes["size"] = _SIZE_WORDS[word]
                elif word in _MARK_WORDS:
                    attributes["mark"] = _MARK_WORDS[word]
                elif word in NUMBER_WORDS or word in _DIGITS:
                    number = NUMBER_WORDS.get(word) or _DIGITS[word]
            run.clear()
            # Trailing "by Zorblax" / "with stripes" / "with a striped pattern".
            j = i + 1
            if j + 1 < len(tokens) and tokens[j] in ("by", "from", "with"):
                k = j + 1 + (tokens[j + 1] in _ARTICLES)
                if k < len(tokens) and tokens[k] in _MARK_WORDS:
                    attributes["mark"] = _MARK_WORDS[tokens[k]]
                    i = k
            copies = number if plural else 1
            clauses[-1].items.append(("object", [ObjectClaim(dict(attributes)) for _ in range(max(copies, 1))]))
        elif token in _BACKGROUND_NOUNS:
            colours = [c for c in map(_colour_of, run) if c is not None]
            if colours:
                claims.background = colours[-1]
            run.clear()
        elif token in _GENERIC_NOUNS:
            numbers = [NUMBER_WORDS.get(w) or _DIGITS.get(w) for w in run if w in NUMBER_WORDS or w in _DIGITS]
            if (numbers and token.endswith("s")) or numbers == [1]:
                claims.count = numbers[-1]
                run[:] = [w for w in run if w not in NUMBER_WORDS and w not in _DIGITS]
            flush_orphans()
        elif token.startswith("@"):
            flush_orphans()
            clauses[-1].items.append(("position", token[1:]))
        elif _is_modifier(token):
            run.append(token)
        else:
            flush_orphans()
            if token in _BOUNDARIES:
                clauses.append(_Clause())
        i += 1
    flush_orphans()

    for clause in clauses:
        _attach_positions(clause, claims)
    return claims


def _attach_positions(clause: _Clause, claims: CaptionClaims) -> None:
    """Give each position mention to the closest phrase without one: the one before it, else the one after."""
    groups = [(index, group) for index, (kind, group) in enumerate(clause.items) if kind == "object"]
    for index, (kind, value) in enumerate(clause.items):
        if kind != "position":
            continue
        before = [group for at, group in groups if at < index and "position" not in group[0].attributes]
        after = [group for at, group in groups if at > index and "position" not in group[0].attributes]
        target = before[-1] if before else (after[0] if after else None)
        if target is None:
            claims.orphans.append(("position", value))
        else:
            for claim in target:
                claim.attributes["position"] = value
    for _, group in groups:
        claims.objects.extend(group)

"""Ground-truth scene records: what is in an image, drawn at random from a difficulty preset."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from recap.world.vocabulary import BACKGROUND_STYLES, BACKGROUNDS, BRAND_PATTERNS, Difficulty

# The attributes every object has and that a detailed caption must state for the object to count as covered.
DESCRIBED_ATTRIBUTES = ("shape", "colour", "size", "position")


@dataclass(frozen=True, kw_only=True)
class SceneObject:
    """One object. `x`, `y` (centre) and `radius` are fractions of the image side; `mark` is a brand or None."""

    shape: str
    colour: str
    size: str
    position: str
    mark: str | None
    x: float
    y: float
    radius: float

    def attribute(self, name: str) -> str | None:
        return getattr(self, name)


@dataclass(frozen=True, kw_only=True)
class Scene:
    """A whole image: background and one or more objects in grid reading order."""

    background: str
    background_style: str
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Scene:
        record = json.loads(text)
        objects = tuple(SceneObject(**obj) for obj in record.pop("objects"))
        return cls(objects=objects, **record)


def sample_scene(
    rng: np.random.Generator,
    difficulty: Difficulty,
    concept: Callable[[np.random.Generator], tuple[str, str]] | None = None,
) -> Scene:
    """Draw a scene: 1..max_objects objects in distinct grid cells, each with random attributes. `concept` draws
    an object's (shape, colour) together (a long-tailed world's `ConceptSampler`); None draws them independently
    and uniformly, with the same rng calls as ever, so the default world never changes."""
    count = int(rng.integers(1, difficulty.max_objects + 1))
    positions = difficulty.positions
    cells = sorted(rng.choice(len(positions), size=count, replace=False).tolist())
    brands = sorted(BRAND_PATTERNS)
    objects = []
    for cell in cells:
        row, column = divmod(cell, difficulty.grid)
        size = str(rng.choice(sorted(difficulty.radius)))
        radius = difficulty.radius[size]
        jitter = rng.uniform(-difficulty.jitter, difficulty.jitter, size=2)
        # Keep the whole object inside the image even after jitter.
        x = float(np.clip((column + 0.5) / difficulty.grid + jitter[0], radius, 1 - radius))
        y = float(np.clip((row + 0.5) / difficulty.grid + jitter[1], radius, 1 - radius))
        mark = str(rng.choice(brands)) if rng.random() < difficulty.mark_probability else None
        if concept is None:
            shape = str(rng.choice(difficulty.shapes))
            colour = str(rng.choice(difficulty.colours))
        else:
            shape, colour = concept(rng)
        objects.append(
            SceneObject(
                shape=shape,
                colour=colour,
                size=size,
                position=positions[cell],
                mark=mark,
                x=round(x, 4),
                y=round(y, 4),
                radius=radius,
            )
        )
    background = str(rng.choice(sorted(BACKGROUNDS)))
    style = str(rng.choice(BACKGROUND_STYLES))
    return Scene(background=background, background_style=style, objects=tuple(objects))

"""The attribute vocabulary of the embedded world and its difficulty presets.

Everything the world can draw, and every word the caption parser understands, is defined here once.
"""

from __future__ import annotations

from dataclasses import dataclass

# Object colours (RGB). Light enough to differ from dark backgrounds and dark enough for light ones.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 25),
    "green": (35, 160, 55),
    "blue": (35, 75, 215),
    "purple": (135, 55, 185),
    "pink": (245, 125, 190),
    "brown": (125, 75, 35),
    "cyan": (30, 200, 215),
    "gray": (128, 128, 128),
}

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (246, 246, 246),
    "light gray": (205, 205, 205),
    "beige": (232, 218, 188),
    "light blue": (192, 214, 238),
    "light green": (200, 234, 200),
    "dark gray": (62, 62, 62),
}
# Background textures vary the images without appearing in any caption.
BACKGROUND_STYLES = ("plain", "gradient", "noise")

SHAPES = ("circle", "square", "triangle", "star", "heart", "diamond", "hexagon")

# A visible mark on an object, tied to a made-up brand. Only web alt-texts name the brand; the detailed
# ground-truth captions never mention marks, like a captioner that says "a tall metal tower" where the
# alt-text says "the Eiffel Tower".
BRAND_PATTERNS: dict[str, str] = {"zorblax": "stripes", "quintaro": "dots", "velmora": "checker"}
# Each brand's mark is a disc of its own colour (none of them an object colour of the easy or normal worlds)
# with its pattern on top in a second colour, so the mark can be told apart at a glance, as a real logo can:
# Zorblax dark with light stripes, Quintaro white with dark dots, Velmora cyan with a dark-teal checker. (World
# v2 drew Velmora's checker in white, which made its mark look like Quintaro's white disc to a small CLIP.)
BRAND_MARK_COLOURS: dict[str, tuple[int, int, int]] = {
    "zorblax": (25, 25, 25),
    "quintaro": (250, 250, 250),
    "velmora": (0, 200, 215),
}
BRAND_PATTERN_COLOURS: dict[str, tuple[int, int, int]] = {
    "zorblax": (245, 245, 245),
    "quintaro": (20, 20, 20),
    "velmora": (0, 105, 115),
}

SIZES = ("small", "large")

POSITIONS_2x2 = ("top left", "top right", "bottom left", "bottom right")
POSITIONS_3x3 = (
    "top left",
    "top center",
    "top right",
    "center left",
    "center",
    "center right",
    "bottom left",
    "bottom center",
    "bottom right",
)

NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "single": 1}


@dataclass(frozen=True, kw_only=True)
class Difficulty:
    """How hard the world is to see: which attributes exist and how big objects are drawn.

    Radii are fractions of the image side; on a 64 px image 0.14 is a 9 px radius.
    """

    name: str
    grid: int
    shapes: tuple[str, ...]
    colours: tuple[str, ...]
    radius: dict[str, float]
    max_objects: int
    jitter: float
    mark_probability: float

    def __post_init__(self) -> None:
        if self.grid not in (2, 3):
            raise ValueError(f"Difficulty.grid must be 2 or 3, got {self.grid}")
        if self.max_objects > self.grid * self.grid:
            raise ValueError(f"Difficulty.max_objects={self.max_objects} does not fit a {self.grid}x{self.grid} grid")
        unknown = set(self.shapes) - set(SHAPES) | set(self.colours) - set(COLOURS) | set(self.radius) - set(SIZES)
        if unknown:
            raise ValueError(f"Difficulty {self.name!r} uses unknown attribute values {sorted(unknown)}")

    @property
    def positions(self) -> tuple[str, ...]:
        return POSITIONS_2x2 if self.grid == 2 else POSITIONS_3x3

    def cell(self, position: str) -> tuple[int, int]:
        """(row, column) of a named grid cell."""
        index = self.positions.index(position)
        return divmod(index, self.grid)


DIFFICULTIES: dict[str, Difficulty] = {
    # A quick world for smoke tests: few values, big objects.
    "easy": Difficulty(
        name="easy",
        grid=2,
        shapes=("circle", "square", "triangle"),
        colours=("red", "yellow", "green", "blue"),
        radius={"small": 0.16, "large": 0.23},
        max_objects=2,
        jitter=0.03,
        mark_probability=0.3,
    ),
    # The default, calibrated with the tiny captioner: 5 shapes, 8 colours, radii 10 and 15 px at 64 px, a 2x2
    # grid. With radii 9/14 and marks over the whole object, a 2.5M-parameter LLaVA plateaued at 0.89 object
    # precision (shape errors: 29% on small marked objects, 9% on small plain ones).
    "normal": Difficulty(
        name="normal",
        grid=2,
        shapes=("circle", "square", "triangle", "star", "heart"),
        colours=("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown"),
        radius={"small": 0.16, "large": 0.23},
        max_objects=3,
        jitter=0.03,
        mark_probability=0.8,
    ),
    # Closer to the probe where tiny models stayed at chance on shape: a 3x3 grid and small objects.
    "hard": Difficulty(
        name="hard",
        grid=3,
        shapes=SHAPES,
        colours=tuple(COLOURS),
        radius={"small": 0.08, "large": 0.14},
        max_objects=3,
        jitter=0.02,
        mark_probability=0.3,
    ),
}


def get_difficulty(name: str) -> Difficulty:
    try:
        return DIFFICULTIES[name]
    except KeyError:
        raise ValueError(f"unknown difficulty {name!r}; choose one of {sorted(DIFFICULTIES)}") from None

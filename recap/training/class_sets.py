"""The class names of zero-shot tasks: a world's brand, shape and colour lists (as `eval-retrieval` classifies
its eval split), or a text file with one class name per line.

Only the world's configuration is read (world.json's difficulty: which shapes and colours it draws; the brand
names are the vocabulary's), never a split's labels.
"""

from __future__ import annotations

from pathlib import Path

from recap.errors import RecapError

WORLD_CLASS_SETS = ("brand", "shape", "colour")


def world_class_sets(world: str | Path) -> dict[str, list[str]]:
    """{"brand": [...], "shape": [...], "colour": [...]} of the world folder `world`, in the order zero-shot
    evaluation uses (brands sorted; shapes and colours as the world's difficulty lists them)."""
    from recap.world.generate import load_manifest
    from recap.world.vocabulary import BRAND_PATTERNS

    difficulty = load_manifest(world)["difficulty"]
    return {
        "brand": sorted(BRAND_PATTERNS),
        "shape": list(difficulty["shapes"]),
        "colour": list(difficulty["colours"]),
    }


def read_class_file(path: str | Path) -> list[str]:
    """One class name per line; blank lines and lines starting with # are skipped. RecapError if the file
    cannot be read, names a class twice, or names fewer than two."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise RecapError(f"cannot read the class file {path} ({error})") from None
    names = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RecapError(f"the class file {path} names {repeated[:5]} more than once")
    if len(names) < 2:
        raise RecapError(f"the class file {path} names {len(names)} class(es); zero-shot needs at least two")
    return names


def resolve_class_sets(specs: list[str], world: str | Path | None) -> dict[str, list[str]]:
    """Each spec, a world class set name (brand, shape, colour: from `world`) or a class file (named after its
    stem), -> {name: classes}. RecapError for a world set without a world, or two sets of one name."""
    found: dict[str, list[str]] = {}
    for spec in specs:
        if spec in WORLD_CLASS_SETS:
            if world is None:
                raise RecapError(
                    f"--classes {spec} names a world's classes: give a world split as --target, or --world"
                )
            name, classes = spec, world_class_sets(world)[spec]
        else:
            name, classes = Path(spec).stem, read_class_file(spec)
        if name in found:
            raise RecapError(f"two class sets are named {name!r}; give each class file its own name")
        found[name] = classes
    if not found:
        raise RecapError("--classes is empty: name brand, shape, colour or a class file")
    return found

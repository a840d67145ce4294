"""Image domains of the embedded world: the same scenes rendered in another style.

A domain changes how a scene is drawn and nothing else: the scene, its captions, its alt-text and every draw of
the scene's random generator are those of the default domain for the same seed, so a model's drop from the
default domain to another one is a pure distribution shift of the images (what POUF and other unsupervised
adaptation methods are measured on). A domain's own random draws (sensor noise, white balance) come from a
generator seeded by the world seed, the split and the image index (`domain_rng`), never from the scene's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

DOMAIN_STREAM = 0x646F6D  # "dom": keeps the domain's seed sequence apart from the scene's [seed, split, index]


@dataclass(frozen=True, kw_only=True)
class Domain:
    """How the world's images are drawn.

    Lengths are fractions of the image side (or of an object's radius), so a 64 px and a 128 px web copy of one
    image look alike. `outline`: objects drawn as a stroke of this fraction of their radius in their colour,
    with the background showing inside (None: filled). The camera's steps, in order, on the rendered image:
    `blur` (Gaussian sigma), `contrast` (pixels pulled towards the image's mean grey, 1: unchanged),
    `saturation` (1: unchanged, 0: grey), `white_balance` (spread of a per-image gain on red and blue, log
    scale), `noise` (sensor noise sigma, 0-255 levels)."""

    name: str
    description: str
    outline: float | None = None
    blur: float = 0.0
    contrast: float = 1.0
    saturation: float = 1.0
    white_balance: float = 0.0
    noise: float = 0.0

    @property
    def is_camera(self) -> bool:
        return (self.blur, self.contrast, self.saturation, self.white_balance, self.noise) != (0.0, 1.0, 1.0, 0.0, 0.0)


DEFAULT_DOMAIN = "default"
# Each shifted domain was sized to cost the shipped reference CLIP (recap/assets/clip-tiny) at least 10 points of
# zero-shot shape or colour top-1 while a person still reads every object. Measured on the eval split of seed 2027
# (1,000 images), default -> domain: outline shape 0.956 -> 0.630, colour 0.992 -> 0.864 (a 0.2 stroke cost
# shape 9 points only); camera shape 0.956 -> 0.898, colour 0.992 -> 0.801 (without the white-balance cast,
# colour 0.927 only).
DOMAINS: dict[str, Domain] = {
    domain.name: domain
    for domain in (
        Domain(name=DEFAULT_DOMAIN, description="filled shapes, sharp and clean (the world as calibrated)"),
        Domain(
            name="outline",
            description="line drawings: each object a thin stroke in its colour (0.14 of its radius), the "
            "background showing inside; marks as usual",
            outline=0.14,
        ),
        Domain(
            name="camera",
            description="a cheap camera: blur, washed-out contrast and colour, a random white-balance cast "
            "and sensor noise",
            blur=0.015,
            contrast=0.7,
            saturation=0.7,
            white_balance=0.1,
            noise=8.0,
        ),
    )
}


def get_domain(name: str) -> Domain:
    """The registered domain `name`; ValueError naming the field and the choices for another."""
    if name not in DOMAINS:
        raise ValueError(f"domain must be one of {sorted(DOMAINS)}, got {name!r}")
    return DOMAINS[name]


def domain_rng(seed: int, split_index: int, index: int) -> np.random.Generator:
    """The generator of one image's domain draws: a function of (seed, split, index), apart from the scene's."""
    return np.random.default_rng([seed, split_index, index, DOMAIN_STREAM])


def outline_mask(shape: Image.Image, width: int) -> Image.Image:
    """The inner stroke of a binary shape mask, `width` pixels wide: the shape less its erosion by a square of
    side 2 * width + 1 (a running minimum along each axis). The frame does not erode, so an object the image
    cuts stays open there, as a drawing of it would."""
    mask = np.asarray(shape)
    inner = mask
    for axis in (0, 1):
        padded = np.pad(inner, [(width, width) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        length = inner.shape[axis]
        inner = np.minimum.reduce(
            [np.take(padded, np.arange(offset, offset + length), axis=axis) for offset in range(2 * width + 1)]
        )
    return Image.fromarray(mask - inner)


def apply_camera(image: Image.Image, domain: Domain, rng: np.random.Generator) -> Image.Image:
    """`image` as the domain's camera would record it (unchanged for a domain without camera steps)."""
    if not domain.is_camera:
        return image
    side = image.width
    if domain.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(domain.blur * side))
    pixels = np.asarray(image, dtype=np.float32)
    grey = pixels.mean(axis=-1, keepdims=True)
    pixels = grey + domain.saturation * (pixels - grey)
    pixels = pixels.mean() + domain.contrast * (pixels - pixels.mean())
    gains = np.exp(rng.normal(0.0, domain.white_balance, size=2)) if domain.white_balance > 0 else np.ones(2)
    pixels = pixels * np.array([gains[0], 1.0, gains[1]], dtype=np.float32)
    if domain.noise > 0:
        pixels = pixels + rng.normal(0.0, domain.noise, size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "RGB")

"""Draw a scene as an RGB image and encode it the way web images come: mostly JPEG, some PNG."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

from recap.world.domains import DEFAULT_DOMAIN, apply_camera, get_domain, outline_mask
from recap.world.scene import Scene, SceneObject
from recap.world.vocabulary import BACKGROUNDS, BRAND_MARK_COLOURS, BRAND_PATTERN_COLOURS, BRAND_PATTERNS, COLOURS

SUPERSAMPLE = 2  # draw at twice the size and downscale, for anti-aliased edges
MARK_RADIUS = 0.6  # the mark's disc, as a fraction of the object's radius


def _regular_polygon(cx: float, cy: float, radius: float, sides: int, rotation: float) -> list[tuple[float, float]]:
    return [
        (
            cx + radius * math.cos(rotation + 2 * math.pi * k / sides),
            cy + radius * math.sin(rotation + 2 * math.pi * k / sides),
        )
        for k in range(sides)
    ]


def _outline(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """Polygon of a shape centred on (cx, cy) with nominal radius r; None for the circle (an ellipse)."""
    if shape == "circle":
        return None
    if shape == "square":
        half = r * 0.86  # about the circle's area, so size reads the same across shapes
        return [(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half), (cx - half, cy + half)]
    if shape == "triangle":
        return _regular_polygon(cx, cy + r * 0.15, r * 1.15, 3, -math.pi / 2)
    if shape == "diamond":
        return _regular_polygon(cx, cy, r * 1.1, 4, -math.pi / 2)
    if shape == "hexagon":
        return _regular_polygon(cx, cy, r, 6, 0.0)
    if shape == "star":
        points = []
        for k in range(10):
            radius = r * 1.15 if k % 2 == 0 else r * 0.5
            angle = -math.pi / 2 + math.pi * k / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    if shape == "heart":
        points = []
        for k in range(48):
            t = 2 * math.pi * k / 48
            hx = 16 * math.sin(t) ** 3
            hy = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            points.append((cx + hx * r / 16, cy - (hy + 2.5) * r / 15))
        return points
    raise ValueError(f"cannot draw unknown shape {shape!r}")


def _shape_mask(size: int, obj: SceneObject) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy, r = obj.x * size, obj.y * size, obj.radius * size
    polygon = _outline(obj.shape, cx, cy, r)
    if polygon is None:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.polygon(polygon, fill=255)
    return mask


def _disc_mask(size: int, obj: SceneObject) -> Image.Image:
    disc = Image.new("L", (size, size), 0)
    cx, cy, inner = obj.x * size, obj.y * size, obj.radius * size * MARK_RADIUS
    ImageDraw.Draw(disc).ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=255)
    return disc


def _pattern_mask(size: int, obj: SceneObject) -> Image.Image:
    """The brand's pattern: stripes, dots or a checker board, cut to the mark's disc."""
    pattern = BRAND_PATTERNS[obj.mark]
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    r = obj.radius * size
    step = max(r * 0.55, 3.0)
    if pattern == "stripes":
        width = max(int(r * 0.2), 1)
        offset = -size
        while offset < size:
            draw.line([(offset, size), (offset + size, 0)], fill=255, width=width)
            offset += step
    elif pattern == "dots":
        dot = max(r * 0.15, 1.0)
        for gy in np.arange(obj.y * size - 2 * step, obj.y * size + 2 * step + 1, step):
            for gx in np.arange(obj.x * size - 2 * step, obj.x * size + 2 * step + 1, step):
                draw.ellipse([gx - dot, gy - dot, gx + dot, gy + dot], fill=255)
    else:  # checker
        cell = step * 0.8
        x0, y0 = obj.x * size - r, obj.y * size - r
        for j in range(int(2 * r / cell) + 1):
            for i in range(int(2 * r / cell) + 1):
                if (i + j) % 2 == 0:
                    draw.rectangle([x0 + i * cell, y0 + j * cell, x0 + (i + 1) * cell, y0 + (j + 1) * cell], fill=255)
    return Image.fromarray(np.minimum(np.asarray(mask), np.asarray(_disc_mask(size, obj))))


def _draw_mark(image: Image.Image, size: int, obj: SceneObject, shape: Image.Image) -> None:
    """The brand's mark on a central disc of the object, like a logo: a disc of the brand's colour with the
    brand's pattern on top in its pattern colour. It covers the middle only, so the outline (shape) and most
    of the colour show."""
    inside = np.asarray(shape)
    brand_colour = BRAND_MARK_COLOURS[obj.mark]
    image.paste(brand_colour, mask=Image.fromarray(np.minimum(inside, np.asarray(_disc_mask(size, obj)))))
    pattern = np.minimum(inside, np.asarray(_pattern_mask(size, obj)))
    image.paste(BRAND_PATTERN_COLOURS[obj.mark], mask=Image.fromarray(pattern))


def _background(size: int, scene: Scene, rng: np.random.Generator) -> np.ndarray:
    base = np.array(BACKGROUNDS[scene.background], dtype=np.float32)
    pixels = np.broadcast_to(base, (size, size, 3)).copy()
    if scene.background_style == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        ramp = (np.cos(angle) * xs + np.sin(angle) * ys)[..., None]
        pixels = pixels * (0.85 + 0.3 * (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6))
    elif scene.background_style == "noise":
        pixels = pixels + rng.normal(0, 10, size=pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def render_scene(
    scene: Scene,
    size: int,
    rng: np.random.Generator,
    *,
    domain: str = DEFAULT_DOMAIN,
    domain_rng: np.random.Generator | None = None,
) -> Image.Image:
    """Render `scene` as a `size` x `size` RGB image; `rng` draws the texture and the colour jitter.

    `domain` (`domains.py`) draws the same scene in another style: it takes the same draws from `rng` as the
    default domain, and its own (noise, white balance) from `domain_rng`, required when it draws any."""
    style = get_domain(domain)
    big = size * SUPERSAMPLE
    image = Image.fromarray(_background(big, scene, rng), "RGB")
    for obj in scene.objects:
        colour = np.clip(np.array(COLOURS[obj.colour]) + rng.integers(-12, 13, size=3), 0, 255)
        shape = _shape_mask(big, obj)
        paint = shape
        if style.outline is not None:
            paint = outline_mask(shape, max(round(style.outline * obj.radius * big), 1))
        image.paste(tuple(int(c) for c in colour), mask=paint)
        if obj.mark is not None:
            _draw_mark(image, big, obj, shape)
    image = image.resize((size, size), Image.Resampling.LANCZOS)
    if style.is_camera:
        if domain_rng is None:
            raise ValueError(f"domain {domain!r} draws noise: pass domain_rng")
        image = apply_camera(image, style, domain_rng)
    return image


def encode_image(image: Image.Image, image_format: str, quality: int = 90) -> bytes:
    """Encode as 'jpg' or 'png' bytes."""
    buffer = io.BytesIO()
    if image_format == "jpg":
        image.save(buffer, format="JPEG", quality=quality)
    elif image_format == "png":
        image.save(buffer, format="PNG")
    else:
        raise ValueError(f"unsupported image format {image_format!r}; use 'jpg' or 'png'")
    return buffer.getvalue()

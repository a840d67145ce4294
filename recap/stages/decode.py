"""Decode, validate and resize images on CPU workers, and parse each sample's caption and metadata.

Every input row comes out as one row: either `status="ok"` with the image as a square uint8 array, or
`status="bad_input"` with an `error` that says what was wrong (missing image or text, broken .json metadata
(UTF-8 or JSON), empty, truncated or non-image bytes, too many pixels, a sample the reader could not read or
found missing from its tar). Odd but valid modes (CMYK, 16-bit, palette, alpha) are converted to RGB. A caption
(.txt) that is not valid UTF-8 does not stop a good image from being captioned: it is decoded with replacement
characters (U+FFFD) and the row's `input_warning` says so, so such rows can be found.

Images are padded to a square (as LLaVA does) and resized to `image_size`; JPEGs are decoded at a reduced DCT
scale when that is enough (PIL's draft mode), plain ones by libjpeg-turbo through simplejpeg and everything else
by PIL.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import simplejpeg
from PIL import Image, ImageOps

from recap.pipeline.stage import Batch, Resources, Stage, batch_length, object_array
from recap.schema import STATUS_BAD_INPUT, STATUS_OK

# LLaVA pads with the CLIP image mean so padding looks like "nothing" to the vision tower.
PAD_COLOUR = (122, 116, 104)
# `pixels` holds each ok image as raw RGB bytes of a size x size x 3 array (see `pixels_to_array`); plain bytes
# travel through Arrow, Ray and Parquet without tensor extensions.
DECODED_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("url", pa.string()),
        ("org_caption", pa.string()),
        ("sha256", pa.string()),
        ("pixels", pa.binary()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("input_warning", pa.string()),
        ("original_width", pa.int64()),
        ("original_height", pa.int64()),
    ]
)
DECODED_COLUMNS = tuple(DECODED_SCHEMA.names)


def pixels_to_array(data: bytes) -> np.ndarray:
    """Raw RGB bytes of a square image -> (side, side, 3) uint8."""
    side = int(round((len(data) / 3) ** 0.5))
    return np.frombuffer(data, dtype=np.uint8).reshape(side, side, 3)


class BadInput(ValueError):
    """A sample that cannot be captioned; the message becomes the row's `error`."""


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        high = array.max() if array.size and array.max() > 0 else 1.0
        image = Image.fromarray((array / high * 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


# Where a JPEG with EXIF keeps it (APP1, right after the start marker); such files take PIL's path, which rotates.
_EXIF_MARKER, _HEADER_BYTES = b"Exif\x00\x00", 65_536


def _draft_scale(width: int, height: int, image_size: int) -> int:
    """The power-of-two DCT scale (1, 2, 4 or 8) PIL's JPEG `draft` picks to keep the short side >= image_size."""
    short = min(width, height)
    scale = min(width // (image_size * width // short), height // (image_size * height // short))
    return next((s for s in (8, 4, 2) if scale >= s), 1)


def _decode_plain_jpeg(data: bytes, image_size: int, max_pixels: int) -> np.ndarray | None:
    """A complete YCbCr or greyscale JPEG without EXIF -> (H, W, 3) uint8 from libjpeg-turbo through simplejpeg, at
    the scale PIL's draft mode would pick: the same pixels as PIL, without its per-image overhead (4-5x faster on
    small images). None for everything else (cut-short or corrupt files, CMYK, EXIF, other formats): PIL's
    path decodes those and says what is wrong."""
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9" or _EXIF_MARKER in data[:_HEADER_BYTES]:
        return None
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
        if colourspace not in ("YCbCr", "Gray") or width * height > max_pixels or min(width, height) < 1:
            return None
        scale = _draft_scale(width, height, image_size)
        return simplejpeg.decode_jpeg(
            data, colorspace="RGB", min_width=-(-width // scale), min_height=-(-height // scale), strict=True
        )  # strict: any libjpeg warning raises, and PIL's path takes the file
    except ValueError:
        return None


def _decode_with_pil(data: bytes, image_size: int, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise BadInput(f"not an image ({error})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise BadInput(f"the image has {width}x{height} = {width * height} pixels, over the limit of {max_pixels}")
    if image.format == "JPEG" and image.mode in ("RGB", "L", "CMYK"):
        # Decode at the smallest power-of-two scale that stays at least image_size on the short side.
        scale = _draft_scale(width, height, image_size)
        image.draft(image.mode, (width // scale, height // scale))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of the (usual) upright image
        return _to_rgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise BadInput(f"the image is truncated or corrupt ({error})") from None


def decode_image(data: bytes | None, image_size: int, max_pixels: int, pad_to_square: bool = True) -> np.ndarray:
    """Bytes -> (image_size, image_size, 3) uint8, or BadInput saying why not."""
    if data is None:
        raise BadInput("the sample has no image")
    if len(data) == 0:
        raise BadInput("the image is empty (0 bytes)")
    pixels = _decode_plain_jpeg(data, image_size, max_pixels)
    if pixels is not None and pixels.shape[:2] == (image_size, image_size):
        return pixels
    image = Image.fromarray(pixels) if pixels is not None else _decode_with_pil(data, image_size, max_pixels)
    if pad_to_square and image.width != image.height:
        side = max(image.size)
        canvas = Image.new("RGB", (side, side), PAD_COLOUR)
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = canvas
    elif image.width != image.height:
        image = ImageOps.fit(image, (min(image.size),) * 2)
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def _utf8_problem(error: UnicodeDecodeError, what: str) -> str:
    return f"the {what} is not valid UTF-8 ({error.reason} at byte {error.start})"


def _caption(data: bytes | None) -> tuple[str | None, str | None]:
    """The .txt caption and a warning: invalid UTF-8 is decoded with replacement characters, and the warning
    (else None) says where it broke. Recaptioning exists for samples whose alt-text is poor, so a broken one is
    flagged rather than rejected."""
    if data is None:
        return None, None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        warning = f"{_utf8_problem(error, 'caption (.txt)')}; decoded with replacement characters"
        return data.decode("utf-8", errors="replace"), warning


def _metadata(data: bytes | None) -> dict:
    if data is None:
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInput(_utf8_problem(error, ".json metadata")) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"the .json metadata is not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(value, dict):
        raise BadInput("the .json metadata is not a JSON object")
    return value


def _original_size(meta: dict) -> tuple[int | None, int | None]:
    """The image's size before img2dataset resized it (its `original_width`/`original_height`, else the stored
    `width`/`height`), or Nones when the metadata does not say."""
    sizes = []
    for names in (("original_width", "width"), ("original_height", "height")):
        value = next((meta[name] for name in names if isinstance(meta.get(name), int | float)), None)
        sizes.append(None if value is None else int(value))
    return sizes[0], sizes[1]


@dataclass(kw_only=True)
class DecodeImages(Stage):
    """Webdataset samples (image, txt, json bytes) -> DECODED_COLUMNS; never raises on bad samples."""

    image_size: int = 336
    max_pixels: int = 89_478_485  # PIL's decompression-bomb limit
    pad_to_square: bool = True

    name: ClassVar[str] = "decode"
    resources: ClassVar[Resources] = Resources(cpus=1.0)
    batch_size: ClassVar[int | None] = 64
    input_columns: ClassVar[tuple[str, ...]] = ("image", "txt", "json", "read_error")
    added_schema: ClassVar[pa.Schema] = DECODED_SCHEMA
    dropped_columns: ClassVar[tuple[str, ...]] = ("image", "image_format", "txt", "json", "read_error")

    def _row(self, batch: Batch, index: int) -> dict:
        row = {"uid": None, "url": None, "org_caption": None, "sha256": None, "status": STATUS_OK, "error": None}
        row["original_width"] = row["original_height"] = None
        problems = []
        read_error = batch["read_error"][index]
        if read_error is not None:
            problems.append(str(read_error))
        try:
            meta = _metadata(batch["json"][index])
        except BadInput as error:
            meta = {}
            problems.append(str(error))
        row.update({name: meta.get(name) for name in ("uid", "url", "sha256")})
        row["original_width"], row["original_height"] = _original_size(meta)
        caption, row["input_warning"] = _caption(batch["txt"][index])
        row["org_caption"] = caption if caption is not None else meta.get("caption")
        if row["org_caption"] is None and read_error is None:  # a sample the reader lost already says why
            problems.append("the sample has no caption (.txt)")
        pixels = None
        if not problems:
            try:
                pixels = decode_image(batch["image"][index], self.image_size, self.max_pixels, self.pad_to_square)
            except BadInput as error:
                problems.append(str(error))
        if problems:
            row.update(status=STATUS_BAD_INPUT, error="; ".join(problems))
        row["pixels"] = None if pixels is None else pixels.tobytes()
        return row

    def __call__(self, batch: Batch) -> Batch:
        rows = [self._row(batch, index) for index in range(batch_length(batch))]
        return {name: object_array([row[name] for row in rows]) for name in DECODED_COLUMNS}

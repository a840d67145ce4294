"""Caption decoded images with a LLaVA captioner; one model per worker (an actor under Ray).

Rows that are not `ok` pass through untouched. A failure on a batch is retried; if it keeps failing, the
images are captioned one at a time so that only the images that fail are marked `caption_failed`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
from PIL import Image

from recap.models.captioner import CaptionerConfig, CaptionResult
from recap.pipeline.stage import Batch, Resources, Stage, batch_length, object_array
from recap.schema import STATUS_CAPTION_FAILED, STATUS_OK
from recap.stages.decode import pixels_to_array

# What the stage adds (status and error are rewritten for rows whose captioning fails).
CAPTION_SCHEMA = pa.schema(
    [
        ("status", pa.string()),
        ("error", pa.string()),
        ("re_caption", pa.string()),
        ("output_tokens", pa.int64()),
        ("finish_reason", pa.string()),
    ]
)


@dataclass(kw_only=True)
class CaptionImages(Stage):
    """Decoded rows -> CAPTION_SCHEMA's columns; the pixels are dropped here. Runs `captioner.batch_size` rows
    per call unless `with_(batch_size=...)` says otherwise."""

    captioner: CaptionerConfig
    retries: int = 2
    retry_wait_s: float = 1.0

    name: ClassVar[str] = "caption"
    resources: ClassVar[Resources] = Resources(cpus=1.0)
    input_columns: ClassVar[tuple[str, ...]] = ("pixels", "status", "error", "org_caption")
    added_schema: ClassVar[pa.Schema] = CAPTION_SCHEMA
    dropped_columns: ClassVar[tuple[str, ...]] = ("pixels",)

    def __post_init__(self) -> None:
        self.batch_size = self.captioner.batch_size

    def setup(self) -> None:
        from recap.models.captioner import load_captioner

        self._captioner = load_captioner(self.captioner)

    def _caption(self, images: list[Image.Image], alt_texts: list[str | None]) -> list[CaptionResult]:
        return self._captioner.caption(images, alt_texts=alt_texts if self.captioner.preset.uses_alt_text else None)

    def _caption_with_retries(self, images, alt_texts) -> list[CaptionResult | Exception]:
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return self._caption(images, alt_texts)
            except Exception as error:  # noqa: BLE001 - any model failure is retried, then recorded per row
                last_error = error
                if attempt < self.retries:
                    time.sleep(self.retry_wait_s * (attempt + 1))
        if len(images) == 1:
            return [last_error]
        results: list[CaptionResult | Exception] = []
        for image, alt in zip(images, alt_texts, strict=True):  # isolate the images that fail
            try:
                results.extend(self._caption([image], [alt]))
            except Exception as error:  # noqa: BLE001
                results.append(error)
        return results

    def __call__(self, batch: Batch) -> Batch:
        if not hasattr(self, "_captioner"):
            self.setup()
        count = batch_length(batch)
        status = list(batch["status"])
        error = list(batch["error"])
        captions: list[str | None] = [None] * count
        tokens: list[int | None] = [None] * count
        finish: list[str | None] = [None] * count
        todo = [i for i in range(count) if status[i] == STATUS_OK]
        if todo:
            images = [Image.fromarray(pixels_to_array(batch["pixels"][i])) for i in todo]
            alt_texts = [batch["org_caption"][i] for i in todo]
            for index, result in zip(todo, self._caption_with_retries(images, alt_texts), strict=True):
                if isinstance(result, Exception):
                    status[index] = STATUS_CAPTION_FAILED
                    error[index] = f"captioner failed after {self.retries} retries: {type(result).__name__}: {result}"
                else:
                    captions[index], tokens[index], finish[index] = (
                        result.text,
                        result.output_tokens,
                        result.finish_reason,
                    )
        return {
            "status": object_array(status),
            "error": object_array(error),
            "re_caption": object_array(captions),
            "output_tokens": object_array(tokens),
            "finish_reason": object_array(finish),
        }

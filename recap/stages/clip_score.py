"""Score decoded images against both captions with a CLIP; one model per worker (an actor under Ray).

Each image is encoded once and compared with its recaption and its alt-text: CLIP score = 100 x max(cosine,
0) (`recap.models.clip.clip_scores`). Rows that are not `ok` (the image could not be decoded) and captions
that are missing get no score. A caption longer than the model's text context is scored on its first tokens
and flagged, so a run can say how many were cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from recap.pipeline.stage import Batch, Resources, Stage, batch_length, object_array
from recap.schema import STATUS_OK
from recap.stages.decode import pixels_to_array

SCORE_SCHEMA = pa.schema(
    [
        ("re_clip_score", pa.float64()),
        ("org_clip_score", pa.float64()),
        ("re_caption_truncated", pa.bool_()),
        ("org_caption_truncated", pa.bool_()),
    ]
)


@dataclass(kw_only=True)
class ClipScores(Stage):
    """Decoded rows with `re_caption` and `org_caption` -> SCORE_SCHEMA's columns; the pixels are dropped here.

    `model` is a CLIP folder (the shipped reference CLIP, or `recap train-clip`'s output) or an open_clip model
    name, with `pretrained` a local checkpoint for a name. `device` "auto" takes the GPU when the stage has one.
    """

    model: str
    pretrained: str | None = None
    device: str = "auto"

    name: ClassVar[str] = "clip-score"
    resources: ClassVar[Resources] = Resources(cpus=1.0)
    batch_size: ClassVar[int | None] = 256
    input_columns: ClassVar[tuple[str, ...]] = ("pixels", "status", "re_caption", "org_caption")
    added_schema: ClassVar[pa.Schema] = SCORE_SCHEMA
    dropped_columns: ClassVar[tuple[str, ...]] = ("pixels",)

    def setup(self) -> None:
        import torch

        from recap.models.clip import load_clip

        device = self.device
        if device == "auto":
            device = "cuda" if self.resources.gpus > 0 and torch.cuda.is_available() else "cpu"
        self._device = device
        self._model, _, self._tokenizer = load_clip(self.model, pretrained=self.pretrained, device=device)

    def __call__(self, batch: Batch) -> Batch:
        from recap.models.clip import clip_scores

        if not hasattr(self, "_model"):
            self.setup()
        count = batch_length(batch)
        out: dict[str, list] = {name: [None] * count for name in SCORE_SCHEMA.names}
        todo = [index for index in range(count) if batch["status"][index] == STATUS_OK]
        if todo:
            pixels = np.stack([pixels_to_array(batch["pixels"][index]) for index in todo])
            captions = [[_text(batch[column][index]) for index in todo] for column in ("re_caption", "org_caption")]
            (re_scores, re_cut), (org_scores, org_cut) = clip_scores(self._model, self._tokenizer, pixels, *captions)
            for position, index in enumerate(todo):
                out["re_clip_score"][index], out["re_caption_truncated"][index] = re_scores[position], re_cut[position]
                out["org_clip_score"][index] = org_scores[position]
                out["org_caption_truncated"][index] = org_cut[position]
        return {name: object_array(values) for name, values in out.items()}


def _text(value) -> str | None:
    return value if isinstance(value, str) and value.strip() else None

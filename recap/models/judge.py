"""The image judge: a small CNN that reads what is in each grid cell of a world image.

    judge = load_judge(shipped_judge())                     # refuses a judge below its accuracy bar
    cells = judge_images(judge, images)                     # images: (N, 32, 32, 3) uint8
    cells[0]  # [{"shape": "star", "colour": "red", "size": "small", "position": "top left"}, None, None, ...]

It exists to score a text-to-image model on the embedded world: generate an image for a scene's caption,
judge it, compare with the scene. A judge folder holds `model.safetensors` and `judge_config.json` (its
vocabulary, its architecture and the accuracy it measured on held-out real world images). The vocabulary is
plain data (lists of names, in the world's order) because models and the world are sibling layers: the trainer
(`recap.training.judge_training`) reads it from the world and writes it here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from recap.errors import RecapError

CONFIG_FILE, WEIGHTS_FILE = "judge_config.json", "model.safetensors"
JUDGE_FORMAT, JUDGE_VERSION = "recap-judge", 1
SHIPPED_JUDGE = Path(__file__).resolve().parents[1] / "assets" / "judge-tiny"
# A judge may judge only when held-out real world images score at least this on every attribute.
MIN_ACCURACY = 0.95
JUDGED_ATTRIBUTES = ("presence", "shape", "colour", "size")
ATTRIBUTE_HEADS = ("shape", "colour", "size")  # the classification heads, besides presence


@dataclass(frozen=True, kw_only=True)
class JudgeVocabulary:
    """What a judge can see: a world difficulty's grid cells (reading order) and attribute values."""

    difficulty: str
    positions: tuple[str, ...]
    shapes: tuple[str, ...]
    colours: tuple[str, ...]
    sizes: tuple[str, ...]
    image_size: int = 32

    def __post_init__(self) -> None:
        for name in ("positions", "shapes", "colours", "sizes"):
            values = tuple(getattr(self, name))
            object.__setattr__(self, name, values)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"JudgeVocabulary.{name} must be distinct names, got {list(values)}")
        if math.isqrt(len(self.positions)) ** 2 != len(self.positions):
            raise ValueError(f"JudgeVocabulary.positions must fill a square grid, got {len(self.positions)} cells")
        if not 16 <= self.image_size <= 256:
            raise ValueError(f"JudgeVocabulary.image_size must be between 16 and 256, got {self.image_size}")

    @property
    def grid(self) -> int:
        return math.isqrt(len(self.positions))

    def classes(self, attribute: str) -> tuple[str, ...]:
        return {"shape": self.shapes, "colour": self.colours, "size": self.sizes}[attribute]

    @classmethod
    def from_dict(cls, record: dict) -> JudgeVocabulary:
        return cls(**{name: record[name] for name in cls.__dataclass_fields__})


def _conv_block(inputs: int, outputs: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU, then a 2x2 max pool."""
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
        nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ImageJudge(nn.Module):
    """Three conv blocks (width, 2 width, 4 width channels; 32 px -> 4 px), each grid cell's features pooled to
    2x2, and one small head shared by all cells: presence (one logit) and shape, colour and size logits.

    `forward(images)` takes float (N, 3, S, S) from `to_tensor` and returns logits: `presence` (N, cells) and
    `shape` / `colour` / `size` (N, cells, classes).
    """

    def __init__(self, vocabulary: JudgeVocabulary, *, width: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.vocabulary, self.width, self.hidden = vocabulary, width, hidden
        self.metadata: dict = {}  # judge_config.json of a loaded judge
        self.features = nn.Sequential(
            _conv_block(3, width), _conv_block(width, 2 * width), _conv_block(2 * width, 4 * width)
        )
        self.cell_pool = 2  # each cell's features as a 2x2 map, so the head sees where in the cell things are
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * width * self.cell_pool**2, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
        )
        self.outputs = nn.ModuleDict(
            {
                "presence": nn.Linear(hidden, 1),
                **{name: nn.Linear(hidden, len(vocabulary.classes(name))) for name in ATTRIBUTE_HEADS},
            }
        )

    @property
    def config(self) -> dict:
        return {"architecture": "ImageJudge", "width": self.width, "hidden": self.hidden}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        grid, pool = self.vocabulary.grid, self.cell_pool
        maps = functional.adaptive_avg_pool2d(self.features(images), grid * pool)  # (N, C, grid*pool, grid*pool)
        batch, channels = maps.shape[:2]
        cells = maps.reshape(batch, channels, grid, pool, grid, pool).permute(0, 2, 4, 1, 3, 5)
        hidden = self.head(cells.reshape(batch * grid * grid, channels, pool, pool))
        logits = {name: layer(hidden).reshape(batch, grid * grid, -1) for name, layer in self.outputs.items()}
        logits["presence"] = logits["presence"].squeeze(-1)
        return logits


def to_tensor(images: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 (N, S, S, 3) RGB -> float (N, 3, S, S) centred around 0; ValueError on another shape or dtype."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != (image_size,) * 2 + (3,):
        described = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
        raise ValueError(f"the judge reads uint8 (N, {image_size}, {image_size}, 3) RGB images, got {described}")
    tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return (tensor / 255.0 - 0.5) / 0.25


@torch.no_grad()
def predict(
    judge: ImageJudge, images: np.ndarray, *, batch_size: int = 256, probabilities: bool = False
) -> dict[str, np.ndarray]:
    """Class indices per image and cell: `present` bool (N, cells) and `shape` / `colour` / `size` int (N, cells),
    the latter meaningful where `present` is True. With `probabilities`, also `shape_probability` (and colour,
    size): the probability the judge gives the class it reads, float (N, cells)."""
    judge.eval()
    size = judge.vocabulary.image_size
    tensor = to_tensor(images, size)
    names = ("present", *ATTRIBUTE_HEADS) + tuple(f"{name}_probability" for name in ATTRIBUTE_HEADS if probabilities)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    with torch.no_grad():
        for start in range(0, len(tensor), batch_size):
            logits = judge(tensor[start : start + batch_size])
            parts["present"].append((logits["presence"] > 0).numpy())
            for name in ATTRIBUTE_HEADS:
                probability, index = logits[name].softmax(-1).max(-1)
                parts[name].append(index.numpy())
                if probabilities:
                    parts[f"{name}_probability"].append(probability.numpy())
    cells = len(judge.vocabulary.positions)
    empty = {"present": bool, **{name: np.int64 for name in ATTRIBUTE_HEADS}}
    return {
        name: np.concatenate(chunks) if chunks else np.zeros((0, cells), empty.get(name, np.float32))
        for name, chunks in parts.items()
    }


def judge_images(judge: ImageJudge, images: np.ndarray, *, batch_size: int = 256) -> list[list[dict | None]]:
    """Per image, per grid cell (the vocabulary's position order): None where the judge sees no object, else
    {"shape", "colour", "size", "position"}."""
    predicted = predict(judge, images, batch_size=batch_size)
    vocabulary = judge.vocabulary
    return [
        [
            {
                "shape": vocabulary.shapes[predicted["shape"][row, cell]],
                "colour": vocabulary.colours[predicted["colour"][row, cell]],
                "size": vocabulary.sizes[predicted["size"][row, cell]],
                "position": position,
            }
            if predicted["present"][row, cell]
            else None
            for cell, position in enumerate(vocabulary.positions)
        ]
        for row in range(len(images))
    ]


def save_judge(judge: ImageJudge, folder: str | Path, metadata: dict | None = None) -> Path:
    """Write `model.safetensors` and `judge_config.json` (vocabulary, architecture and `metadata`, which should
    carry the held-out `accuracy` table) into `folder`, each under a temporary name first. Other files in the
    folder (a RECIPE.md) are left alone."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "format": JUDGE_FORMAT,
        "version": JUDGE_VERSION,
        "vocabulary": asdict(judge.vocabulary),
        "model": judge.config,
        **(metadata or {}),
    }
    weights = folder / f".{WEIGHTS_FILE}.tmp"
    save_file({name: tensor.contiguous() for name, tensor in judge.state_dict().items()}, str(weights))
    os.replace(weights, folder / WEIGHTS_FILE)
    config = folder / f".{CONFIG_FILE}.tmp"
    config.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(config, folder / CONFIG_FILE)
    return folder


def below_bar(accuracy: dict, minimum: float = MIN_ACCURACY) -> dict[str, float | None]:
    """The judged attributes of an accuracy table that are missing or under `minimum`."""
    return {name: accuracy.get(name) for name in JUDGED_ATTRIBUTES if (accuracy.get(name) or 0.0) < minimum}


def load_judge(folder: str | Path, *, require_accuracy: bool = True) -> ImageJudge:
    """A judge folder -> ImageJudge in eval mode, with `.metadata` (its judge_config.json).

    RecapError if the folder is not a judge, or, with `require_accuracy`, if its recorded held-out accuracy is
    below MIN_ACCURACY on any attribute (such a judge must not judge).
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise RecapError(f"{folder} is not a judge folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    record = json.loads((folder / CONFIG_FILE).read_text())
    if record.get("format") != JUDGE_FORMAT or record.get("version") != JUDGE_VERSION:
        raise RecapError(f"{folder / CONFIG_FILE} is not a version {JUDGE_VERSION} {JUDGE_FORMAT} config")
    if require_accuracy:
        failing = below_bar(record.get("accuracy") or {})
        if failing:
            raise RecapError(
                f"the judge in {folder} measured {failing} on held-out images, below the {MIN_ACCURACY} bar on "
                "every attribute that a judge must reach; retrain it (recap.training.judge_training.train_judge)"
            )
    architecture = record["model"]
    judge = ImageJudge(
        JudgeVocabulary.from_dict(record["vocabulary"]), width=architecture["width"], hidden=architecture["hidden"]
    )
    judge.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    judge.metadata = record
    return judge.eval()


def shipped_judge() -> Path:
    """recap/assets/judge-tiny; FileNotFoundError with the retrain recipe if it is missing."""
    if not (SHIPPED_JUDGE / CONFIG_FILE).exists():
        raise FileNotFoundError(
            f"no shipped judge at {SHIPPED_JUDGE}; train one with recap.training.judge_training (see its RECIPE.md)"
        )
    return SHIPPED_JUDGE


def parameter_count(judge: nn.Module) -> int:
    return sum(parameter.numel() for parameter in judge.parameters())

"""What a distillation is (`DistillationConfig`) and the prompts it reads (`read_prompts`): `recap distill-t2i`'s
options, checked, with SiD-LSG's four guidance scales and SiDA's warm-up in images. The loop is
`recap.training.distillation`'s."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recap.errors import RecapError
from recap.io_utils import read_caption_table
from recap.schema import STATUS_OK

METHODS = ("sid", "sida")
# SiDA's warm-up as shares of a run: the authors' 100k / 200k images against their runs of ~20M images.
GENERATOR_WARMUP_SHARE, GAN_WARMUP_SHARE = 0.005, 0.01


@dataclass(kw_only=True)
class DistillationConfig:
    """What `recap distill-t2i` does. `guidance_scale` is LSG's K, the default of the four kappas: kappa1 (the
    fake network in its own loss), kappa2 = kappa3 (the fake network in the generator loss) and kappa4 (the
    teacher there)."""

    teacher: str
    prompts: str  # a caption table (Parquet file or folder) or a text file, one prompt per line
    out: str
    method: str = "sid"
    prompt_column: str = "re_caption"
    train: str | None = None  # SiDA's real images: webdataset shards (joined with `prompts` on uid) or a world split
    init: str | None = None  # a one-step model folder to start the generator from (SiD then SiDA: SiD²A)
    guidance_scale: float = 2.0
    kappa1: float | None = None
    kappa2: float | None = None
    kappa3: float | None = None
    kappa4: float | None = None
    alpha: float = 1.0  # SiD-LSG's; SiD on EDM networks uses 1.2
    start_sigma: float = 2.5
    iterations: int = 2000
    batch_size: int = 32
    learning_rate: float = 1e-4  # the generator's; Adam with betas (0, 0.999) for both networks
    fake_learning_rate: float | None = None  # default: learning_rate
    prompt_dropout: float = 0.1  # prompts dropped to "" in the fake step when a kappa is not 1 (SiD-LSG)
    ema_halflife_images: float = 50_000
    ema_rampup: float = 0.05
    generator_warmup_images: int | None = None  # SiDA: default GENERATOR_WARMUP_SHARE of the run's images
    gan_warmup_images: int | None = None  # SiDA: default GAN_WARMUP_SHARE of the run's images
    sid_scale: float = 100.0  # SiDA's weights of its two generator terms
    gan_scale: float = 0.01
    snapshot_every: int = 0  # iterations: save the EMA generator as OUT/snapshots/images-N (learning curves)
    seed: int = 0
    checkpoint_every: int = 100
    threads: int = 0
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus: bool = False
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.method == "sida" and not self.train:
            raise ValueError("method sida needs real images: give train (the recaptioned shards or a world split)")
        for name in ("iterations", "batch_size", "checkpoint_every", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("learning_rate", "start_sigma", "ema_halflife_images", "guidance_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.prompt_dropout < 1.0:
            raise ValueError(f"prompt_dropout must be in [0, 1), got {self.prompt_dropout}")
        if self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0, got {self.snapshot_every}")

    @property
    def kappas(self) -> tuple[float, float, float, float]:
        values = (self.kappa1, self.kappa2, self.kappa3, self.kappa4)
        return tuple(self.guidance_scale if value is None else value for value in values)

    @property
    def total_images(self) -> int:
        return self.iterations * self.batch_size * self.workers

    @property
    def warmups(self) -> tuple[int, int]:
        """(images before the first generator step, images before the adversarial term); (0, 0) for SiD."""
        if self.method != "sida":
            return 0, 0
        generator = self.generator_warmup_images
        gan = self.gan_warmup_images
        generator = round(GENERATOR_WARMUP_SHARE * self.total_images) if generator is None else generator
        gan = round(GAN_WARMUP_SHARE * self.total_images) if gan is None else gan
        return generator, max(gan, generator)


def read_prompts(source: str | Path, column: str = "re_caption") -> list[str]:
    """The prompts of a distillation: a text file's non-empty lines, or a caption table's `column` where the row
    is ok and the text not empty. Reads no image. RecapError naming the source when there are none."""
    path = Path(source)
    if path.is_file() and path.suffix != ".parquet":
        prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        table = read_caption_table(path, [column], optional=("status",), hint="use --prompt-column").to_pylist()
        prompts = [row[column] for row in table if row[column] and row.get("status", STATUS_OK) == STATUS_OK]
    if not prompts:
        raise RecapError(f"{source} holds no prompts (no non-empty {column!r} in an ok row, or no non-empty line)")
    return prompts

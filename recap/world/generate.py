"""Generate the embedded world: a synthetic, DataComp-shaped web dataset whose truth is known.

Layout of a world folder:

    world.json                         config, vocabulary, counts and alt-text quality per split
    {split}/metadata/{shard:05d}.parquet   DataComp metadata: uid, url, text, original_width/height, sha256
    {split}/truth.parquet              uid, scene (JSON), caption and short_caption (ground truth), alt_kind,
                                       serve, image_format
    {split}/images/{uid}.{jpg,png}     the image files the web serves

Splits: `web` (to recaption; some URLs dead or corrupt when served), `sft` (for training the captioner) and
`eval` (held out). Everything is a pure function of the seed: the same seed gives the same files. With
`long_tail`, the web and sft splits draw each object's concept from a long-tailed profile (`concepts.py`); the
eval split stays balanced, and world.json's `long_tail` records the profile and each split's concept counts. With
`domain`, every split's images are drawn in another style (`domains.py`: outlines, a cheap camera); the scenes,
captions, alt-text and metadata text stay the default domain's, and world.json's `domain` names it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recap.console import LOG_FILES, progress_bar
from recap.errors import RecapError
from recap.io_utils import ensure_writable_folder, holds_only, replace_folder, write_json_atomic
from recap.world.captions import (
    DEFAULT_ALT_TEXT_MIX,
    alt_text,
    ground_truth_caption,
    short_caption,
    validate_alt_text_mix,
)
from recap.world.concepts import ConceptSampler, check_long_tail, concept_counts, long_tail_profile
from recap.world.domains import DEFAULT_DOMAIN, domain_rng, get_domain
from recap.world.quality import CaptionScore, score_caption
from recap.world.reasoning import REASONING_FILE, reasoning_set
from recap.world.render import encode_image, render_scene
from recap.world.scene import Scene, sample_scene
from recap.world.vocabulary import (
    BACKGROUNDS,
    BRAND_MARK_COLOURS,
    BRAND_PATTERN_COLOURS,
    BRAND_PATTERNS,
    COLOURS,
    SHAPES,
    get_difficulty,
)

WORLD_FORMAT = "recap-world"
WORLD_VERSION = 3
# What changed between world versions and why; every world.json carries it. The same seed draws a different
# world in each version, so a world of another version is refused (regenerate it).
CALIBRATION = (
    {
        "version": 1,
        "change": "objects of radius 0.16 / 0.23 of the image; brand marks on a central disc (half the radius)",
        "why": "with radii 9/14 px and marks over whole objects the tiny captioner stopped at 0.89 object precision",
    },
    {
        "version": 2,
        "change": "each brand's mark is a disc of its own colour (Zorblax near-black, Quintaro white, Velmora cyan) "
        "0.6 of the object's radius, with its pattern on top; 0.8 of the normal world's objects carry a mark "
        "(was 0.3); web alt-text names a marked object's brand 19 times in 20 (was 16), wrong alt-text included",
        "why": "Recap-CLIP's brand zero-shot: with patterns of 2-5 px on a 10-15 px disc, a linear probe on "
        "patch-16 CLIP features found almost nothing of the brand (0.58 against a 0.55 majority class), so "
        "alt-text-trained CLIP stayed near chance on brands and the paper's trade-off could not show",
        "measured": "tiny CLIP, 800 steps of 128 on 8,000 sft images, brand top-1 on 1,000 eval images (chance "
        "0.33): coloured marks alone 0.50 at p=1; with marks on half the objects and 9 in 10 named 0.98 at p=1, "
        "0.48 at p=0.5; final 0.86 at p=0.5 and 0.32 at p=0",
    },
    {
        "version": 3,
        "change": "each brand's pattern has its own colour: Velmora's checker is dark teal on a cyan disc (was "
        "white on a darker cyan); Zorblax (light stripes on near-black) and Quintaro (dark dots on white) as before",
        "why": "Recap-CLIP's trade-off: at mixed p the tiny CLIP confused Velmora's half-white mark with Quintaro's "
        "white one (p=0.5: 57 of 197 Quintaro images called Velmora, 70 of 189 the other way; Zorblax 0.98), so "
        "below p=0.8 no p came within 5 points of p=1 on brand top-1",
        "measured": "48-token tiny CLIP, 600 steps of 128 at p=0.65 on 10,000 sft images (seed 2027), 1,000 eval "
        "images: brand top-1 0.818 -> 0.972, mean_recall@1 0.605 -> 0.659; the shipped captioner fell to 0.930 "
        "object precision on a fresh world and was fine-tuned, the reference CLIP (shape 0.897) retrained",
    },
)
WORLD_MANIFEST = "world.json"
SPLITS = ("web", "sft", "eval")
URL_HOST = "images.recap-world.test"  # .test never resolves: only `recap download`'s local server answers it
METADATA_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("url", pa.string()),
        ("text", pa.string()),
        ("original_width", pa.int64()),
        ("original_height", pa.int64()),
        ("sha256", pa.string()),
    ]
)
TRUTH_SCHEMA = pa.schema(
    [
        ("uid", pa.string()),
        ("scene", pa.string()),
        ("caption", pa.string()),
        ("short_caption", pa.string()),
        ("alt_kind", pa.string()),
        ("serve", pa.string()),
        ("image_format", pa.string()),
    ]
)
# How the local web server answers a URL: the failure modes of real DataComp links.
SERVE_KINDS = ("ok", "http_404", "timeout", "truncated", "not_an_image")
DEFAULT_SERVE_MIX = {"ok": 0.88, "http_404": 0.06, "timeout": 0.02, "truncated": 0.02, "not_an_image": 0.02}


@dataclass(kw_only=True)
class WorldConfig:
    """What `recap world` generates. Sizes are image counts per split."""

    seed: int = 0
    size: int = 1000
    sft_size: int | None = None  # default: same as size
    eval_size: int | None = None  # default: size // 4, at least 50
    difficulty: str = "normal"
    image_size: int = 64
    png_fraction: float = 0.1
    samples_per_metadata_file: int = 10_000
    alt_text_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ALT_TEXT_MIX))
    serve_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SERVE_MIX))
    # Tail / head concept frequency of the web and sft splits (CIFAR-LT's exp profile; 0.01: the rarest concept is
    # 100x rarer than the commonest). None: every shape and colour equally likely (the default world).
    long_tail: float | None = None
    # How the images are drawn (`domains.py`): another domain renders the same scenes, captions and alt-text in
    # another style, for measuring a model under a distribution shift.
    domain: str = DEFAULT_DOMAIN
    # Reasoning questions about the eval split's scenes in InfiMM-Eval's format, with answers and steps
    # (`reasoning.py`), written to eval/reasoning.json. 0: none (the default world has none).
    reasoning: int = 0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        self.sft_size = self.size if self.sft_size is None else self.sft_size
        self.eval_size = max(self.size // 4, 50) if self.eval_size is None else self.eval_size
        for name in ("sft_size", "eval_size", "reasoning"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 16 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be between 16 and 1024 pixels, got {self.image_size}")
        if not 0 <= self.png_fraction <= 1:
            raise ValueError(f"png_fraction must be between 0 and 1, got {self.png_fraction}")
        if self.samples_per_metadata_file < 1:
            raise ValueError(f"samples_per_metadata_file must be >= 1, got {self.samples_per_metadata_file}")
        get_difficulty(self.difficulty)
        if self.long_tail is not None:
            check_long_tail(self.long_tail)
        get_domain(self.domain)
        self.alt_text_mix = validate_alt_text_mix(self.alt_text_mix)
        unknown = sorted(set(self.serve_mix) - set(SERVE_KINDS))
        if unknown or sum(self.serve_mix.values()) <= 0 or min(self.serve_mix.values()) < 0:
            raise ValueError(f"serve_mix must map {list(SERVE_KINDS)} to weights >= 0, got {self.serve_mix}")
        total = sum(self.serve_mix.values())
        self.serve_mix = {kind: self.serve_mix.get(kind, 0.0) / total for kind in SERVE_KINDS}

    def split_size(self, split: str) -> int:
        return {"web": self.size, "sft": self.sft_size, "eval": self.eval_size}[split]

    def long_tail_profile(self) -> dict | None:
        """The concept ranking and probabilities of a long-tailed world (None for a balanced one)."""
        if self.long_tail is None:
            return None
        return long_tail_profile(self.seed, get_difficulty(self.difficulty), self.long_tail)


@functools.lru_cache(maxsize=8)
def _concept_sampler(seed: int, difficulty: str, ratio: float) -> ConceptSampler:
    level = get_difficulty(difficulty)
    return ConceptSampler(long_tail_profile(seed, level, ratio), level)


@dataclass(frozen=True)
class WorldSample:
    """One generated image with everything known about it."""

    uid: str
    scene: Scene
    caption: str
    alt_text: str
    alt_kind: str
    serve: str
    image_format: str
    image_bytes: bytes
    original_size: int


def _choose(rng: np.random.Generator, mix: dict[str, float]) -> str:
    kinds = list(mix)
    return kinds[int(rng.choice(len(kinds), p=np.array([mix[k] for k in kinds])))]


def make_sample(config: WorldConfig, split: str, index: int) -> WorldSample:
    """The `index`-th sample of `split`: depends only on (seed, split, index)."""
    difficulty = get_difficulty(config.difficulty)
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index])
    uid = rng.bytes(16).hex()
    skewed = config.long_tail is not None and split != "eval"  # eval stays balanced, as CBDM evaluates
    concept = _concept_sampler(config.seed, config.difficulty, config.long_tail) if skewed else None
    scene = sample_scene(rng, difficulty, concept)
    # Web images come in several sizes; all are square so positions read the same after resizing.
    original_size = int(config.image_size * rng.choice([1.0, 1.5, 2.0]))
    # The domain's own draws come from a generator of their own: the scene's draws stay those of the default domain.
    image = render_scene(
        scene, original_size, rng, domain=config.domain, domain_rng=domain_rng(config.seed, SPLITS.index(split), index)
    )
    image_format = "png" if rng.random() < config.png_fraction else "jpg"
    image_bytes = encode_image(image, image_format, quality=int(rng.integers(80, 96)))
    alt_kind = _choose(rng, config.alt_text_mix)
    text = alt_text(scene, alt_kind, rng, difficulty)
    serve = _choose(rng, config.serve_mix) if split == "web" else "ok"
    return WorldSample(
        uid=uid,
        scene=scene,
        caption=ground_truth_caption(scene),
        alt_text=text,
        alt_kind=alt_kind,
        serve=serve,
        image_format=image_format,
        image_bytes=image_bytes,
        original_size=original_size,
    )


def sample_url(split: str, file_name: str) -> str:
    """Where the local web server serves a split's image (the metadata's `url`)."""
    return f"http://{URL_HOST}/{split}/{file_name}"


def _write_split(config: WorldConfig, split: str, folder: Path, progress: bool) -> dict:
    (folder / "images").mkdir(parents=True)
    (folder / "metadata").mkdir()
    metadata: dict[str, list] = {name: [] for name in METADATA_SCHEMA.names}
    truth: dict[str, list] = {name: [] for name in TRUTH_SCHEMA.names}
    quality = CaptionScore()
    quality_by_kind: dict[str, CaptionScore] = {}
    concepts: Counter = Counter()
    seen_uids: set[str] = set()
    shards = 0

    def flush_metadata() -> None:
        nonlocal shards
        if metadata["uid"]:
            table = pa.table(metadata, schema=METADATA_SCHEMA)
            pq.write_table(table, folder / "metadata" / f"{shards:05d}.parquet")
            shards += 1
            for column in metadata.values():
                column.clear()

    size = config.split_size(split)
    for index in progress_bar(range(size), desc=f"world {split}", unit="img", disable=not progress):
        sample = make_sample(config, split, index)
        if sample.uid in seen_uids:  # 128 random bits: never in practice, but a repeat would break joins
            raise RecapError(f"uid collision in split {split} at index {index}; use another --seed")
        seen_uids.add(sample.uid)
        (folder / "images" / f"{sample.uid}.{sample.image_format}").write_bytes(sample.image_bytes)
        metadata["uid"].append(sample.uid)
        metadata["url"].append(sample_url(split, f"{sample.uid}.{sample.image_format}"))
        metadata["text"].append(sample.alt_text)
        metadata["original_width"].append(sample.original_size)
        metadata["original_height"].append(sample.original_size)
        metadata["sha256"].append(hashlib.sha256(sample.image_bytes).hexdigest())
        truth["uid"].append(sample.uid)
        truth["scene"].append(sample.scene.to_json())
        truth["caption"].append(sample.caption)
        truth["short_caption"].append(short_caption(sample.scene))
        truth["alt_kind"].append(sample.alt_kind)
        truth["serve"].append(sample.serve)
        truth["image_format"].append(sample.image_format)
        concepts.update(concept_counts([sample.scene]))
        score = score_caption(sample.alt_text, sample.scene)
        quality += score
        quality_by_kind.setdefault(sample.alt_kind, CaptionScore())
        quality_by_kind[sample.alt_kind] += score
        if len(metadata["uid"]) >= config.samples_per_metadata_file:
            flush_metadata()
    flush_metadata()
    pq.write_table(pa.table(truth, schema=TRUTH_SCHEMA), folder / "truth.parquet")
    summary = {
        "size": size,
        "metadata_files": shards,
        "alt_kinds": dict(sorted(Counter(truth["alt_kind"]).items())),
        "serve": dict(sorted(Counter(truth["serve"]).items())),
        "image_formats": dict(sorted(Counter(truth["image_format"]).items())),
        "alt_text_quality": quality.summary(),
        "alt_text_quality_by_kind": {kind: s.summary() for kind, s in sorted(quality_by_kind.items())},
    }
    if config.long_tail is not None:  # the default world's manifest stays as it was
        summary["concepts"] = dict(concepts.most_common())
    return summary


def _write_reasoning(config: WorldConfig, folder: Path) -> dict:
    """eval/reasoning.json (InfiMM-Eval's format plus answers and steps) about the eval split just written."""
    truth = pq.read_table(folder / "truth.parquet", columns=["uid", "scene", "image_format"]).to_pylist()
    samples = [
        (
            row["uid"],
            sample_url("eval", f"{row['uid']}.{row['image_format']}"),
            f"{row['uid']}.{row['image_format']}",
            Scene.from_json(row["scene"]),
        )
        for row in truth
    ]
    records = reasoning_set(samples, config.reasoning, config.seed, get_difficulty(config.difficulty))
    write_json_atomic(folder / REASONING_FILE, records)
    kinds = Counter(f"{record['Category']}/{record['Complexity']}" for record in records.values())
    return {"file": f"eval/{REASONING_FILE}", "questions": len(records), "kinds": dict(sorted(kinds.items()))}


def generate_world(config: WorldConfig, out: str | Path, *, overwrite: bool = False, progress: bool = True) -> dict:
    """Write a world folder at `out` and return its manifest.

    The world is written to a staging folder beside `out` and moved into place when complete, so a crash
    never leaves a half-written world behind. An existing world is replaced only with `overwrite`.
    """
    out = Path(out)
    if not holds_only(out, LOG_FILES):
        if not (out / WORLD_MANIFEST).exists():
            raise RecapError(f"{out} exists and is not an empty folder or a world; choose another --out")
        if not overwrite:
            raise RecapError(f"{out} already holds a world; pass --overwrite to replace it")
    ensure_writable_folder(out.parent if out.parent != Path("") else Path("."), "parent folder of --out")
    staging = out.with_name(f".{out.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        splits = {split: _write_split(config, split, staging / split, progress) for split in SPLITS}
        difficulty = get_difficulty(config.difficulty)
        manifest = {
            "format": WORLD_FORMAT,
            "version": WORLD_VERSION,
            "config": asdict(config),
            "difficulty": asdict(difficulty),
            "url_prefix": f"http://{URL_HOST}/",
            "vocabulary": {
                "shapes": list(SHAPES),
                "colours": list(COLOURS),
                "backgrounds": list(BACKGROUNDS),
                "brands": {
                    brand: {
                        "pattern": pattern,
                        "colour": list(BRAND_MARK_COLOURS[brand]),
                        "pattern_colour": list(BRAND_PATTERN_COLOURS[brand]),
                    }
                    for brand, pattern in BRAND_PATTERNS.items()
                },
                "positions": list(difficulty.positions),
            },
            "splits": splits,
            "long_tail": config.long_tail_profile(),
            "domain": {"name": config.domain, "description": get_domain(config.domain).description},
            "calibration": list(CALIBRATION),
        }
        if config.reasoning:
            manifest["reasoning"] = _write_reasoning(config, staging / "eval")
        write_json_atomic(staging / WORLD_MANIFEST, manifest)
        replace_folder(staging, out, keep=LOG_FILES)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def load_manifest(world: str | Path) -> dict:
    """Read a world's manifest, or raise RecapError if `world` is not a world folder."""
    path = Path(world) / WORLD_MANIFEST
    if not path.is_file():
        raise RecapError(f"{world} is not a world folder (no {WORLD_MANIFEST}); create one with `recap world`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != WORLD_FORMAT or manifest.get("version") != WORLD_VERSION:
        raise RecapError(f"{path} is not a version {WORLD_VERSION} {WORLD_FORMAT} manifest; regenerate the world")
    return manifest


def load_truth(world: str | Path, split: str) -> pa.Table:
    """The truth table of one split (uid, scene JSON, ground-truth caption, alt_kind, serve, image_format)."""
    if split not in SPLITS:
        raise RecapError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    load_manifest(world)
    return pq.read_table(Path(world) / split / "truth.parquet")


def truth_by_uid(world: str | Path, split: str, column: str) -> dict[str, object]:
    """uid -> one column of a split's truth table (for example serve, caption or image_format)."""
    table = load_truth(world, split)
    return dict(zip(table["uid"].to_pylist(), table[column].to_pylist(), strict=True))


def load_scenes(world: str | Path, split: str) -> dict[str, Scene]:
    """uid -> Scene for one split."""
    table = load_truth(world, split)
    return {
        uid: Scene.from_json(scene)
        for uid, scene in zip(table["uid"].to_pylist(), table["scene"].to_pylist(), strict=True)
    }

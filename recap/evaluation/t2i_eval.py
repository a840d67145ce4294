"""Evaluate text-to-image models on a world eval split, against the ground truth of each prompt.

    recap eval-t2i --model runs/dit/p-0.00/model --model runs/dit/p-1.00/model --eval WORLD/eval --out runs/t2i-eval

For every prompt (an eval image's ground-truth caption, or its recaption from a caption table, as the paper
prompts with recaptions) each model draws one image with the same seed, and three measures read it:

- **prompt-attribute accuracy** by the judge (`recap.models.judge`, trained on real world images and refused
  below 0.95 per attribute): the share of prompted objects drawn in their cell with the right shape, colour
  and size, each attribute alone, and the rate of objects drawn in cells the prompt left empty;
- **CLIP score** of image against prompt with the reference CLIP (100 x max(cos, 0), as the curation scores);
- **Frechet distance** to the eval split's real images in the reference CLIP's image-embedding space (the
  closed form, `frechet.py`; the real images pass the same 32 px bottleneck, so only content counts).

With `concepts` (the training world), the same measures per concept and per head / middle / tail third of the
concepts' training frequency, and each concept's diversity across seeds (`concept_eval.py`).

And two negative-prompt checks, each under plain negative-prompt guidance and Perp-Neg:
(a) a negative naming a colour the prompt does not ask for (default "green", on prompts without green): the
share of images with an object of that colour should fall; (b) a negative that is the prompt's own first
object ("A small red heart."): the share of images where that object is no longer drawn, which Perp-Neg should
keep lower than the plain negative.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from recap.console import progress_bar
from recap.errors import RecapError
from recap.world.scene import Scene


@dataclass(kw_only=True)
class T2IEvalConfig:
    """What `recap eval-t2i` runs. `models` are model folders, optionally labelled `LABEL=FOLDER`."""

    models: list[str]
    eval: str
    out: str
    prompt_table: str | None = None  # a caption table with the eval images' uids (e.g. their recaptions)
    prompt_column: str = "caption"  # "caption": the ground truth; with prompt_table, its column (re_caption)
    limit: int = 300
    judge: str | None = None  # a judge folder; None: the shipped one
    clip: str | None = None  # the CLIP for scores and features; None: the shipped reference CLIP
    scale: float | None = None  # None: each model's recorded guidance scale, else 4
    # Guidance scales to choose from per model, on `validation` prompts that follow the eval's (the eval split's
    # images `limit` .. `limit + validation`): the scale with the best judged object accuracy is used for the
    # eval. None: `scale` for every model.
    scales: tuple[float, ...] | None = None
    validation: int = 200
    steps: int = 20
    scheduler: str = "ddim"
    seed: int = 0
    negatives: bool = True
    negative_limit: int = 300  # the paired own-object measure uses the ~30% of them drawn without a negative
    negative_colour: str = "green"
    negative_scale: float | None = None  # Perp-Neg's; None: `scale - 1`, the plain negative's weight
    grid_images: int = 24
    # The world the models trained on: per-concept scores, by third of its web split's concept frequency.
    concepts: str | None = None
    diversity_seeds: int = 8  # images per concept's single-object prompt, for diversity
    batch_size: int = 64
    skip_bricks: float = 1.0  # LEGO stacks: skip the top brick after this fraction of the steps (1: never)
    threads: int = 0
    models_labels: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("give at least one model folder")
        if self.concepts is not None and self.diversity_seeds < 2:
            raise ValueError(f"diversity_seeds must be >= 2 (pairs of images), got {self.diversity_seeds}")
        for name in ("limit", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        labels = [
            model.split("=", 1)[0] if "=" in model else Path(model).parent.name or model for model in self.models
        ]
        if len(set(labels)) != len(labels):
            raise ValueError(f"models need distinct labels (LABEL=FOLDER), got {labels}")
        self.models_labels = labels

    def folders(self) -> dict[str, str]:
        return {
            label: model.split("=", 1)[1] if "=" in model else model
            for label, model in zip(self.models_labels, self.models, strict=True)
        }


def prompt_attribute_scores(scenes: list[Scene], judged: list[list[dict | None]], positions: list[str]) -> dict:
    """Judge readings of generated images against the scenes their prompts describe: per prompted object,
    whether its cell holds an object (`presence`) with the right `shape`, `colour`, `size`, and all three
    (`object_accuracy`, the headline); `unprompted_rate` is the share of cells the prompts left empty in which
    an object was drawn."""
    from recap.evaluation.concept_eval import attribute_hits

    objects = present = shape = colour = size = right = empty = extra = 0
    for scene, cells in zip(scenes, judged, strict=True):
        prompted = {obj.position: obj for obj in scene.objects}
        for position, cell in zip(positions, cells, strict=True):
            obj = prompted.get(position)
            if obj is None:
                empty += 1
                extra += cell is not None
                continue
            objects += 1
            if cell is None:
                continue
            present += 1
            hits = attribute_hits(cell, obj)
            shape, colour, size, right = shape + hits[0], colour + hits[1], size + hits[2], right + all(hits)
    if not objects:
        raise RecapError("no prompted objects to judge")
    return {
        "object_accuracy": right / objects,
        "presence": present / objects,
        "shape": shape / objects,
        "colour": colour / objects,
        "size": size / objects,
        "unprompted_rate": extra / empty if empty else 0.0,
        "objects": objects,
        "images": len(scenes),
    }


def object_phrase(obj) -> str:
    """The world's short caption for one object: "A small red heart." (no position)."""
    return f"A {obj.size} {obj.colour} {obj.shape}."


def _draws(cells: list[dict | None], position: str, obj) -> bool:
    """Whether the judged cells show `obj` (shape and colour) at `position`."""
    for cell in cells:
        if cell is not None and cell["position"] == position:
            return cell["shape"] == obj.shape and cell["colour"] == obj.colour
    return False


class T2IEvaluator:
    """Loads the eval split, the judge and the reference CLIP once; `evaluate(model)` scores one model."""

    def __init__(self, config: T2IEvalConfig, *, progress: bool = True) -> None:
        import pyarrow.parquet as pq

        from recap.models.assets import shipped_clip
        from recap.models.clip import load_clip
        from recap.models.judge import load_judge, shipped_judge
        from recap.training.pairs import load_pairs

        self.config, self.progress = config, progress
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        self.judge = load_judge(config.judge or shipped_judge())
        self.positions = list(self.judge.vocabulary.positions)
        self.clip, _, self.tokenizer = load_clip(str(config.clip or shipped_clip()))
        size = self.judge.vocabulary.image_size
        extra = config.validation if config.scales else 0
        real = load_pairs(config.eval, size, limit=config.limit + extra, progress=progress)
        if real.scenes is None:
            raise RecapError(f"{config.eval} is not a world split with ground-truth scenes (truth.parquet)")
        scenes = [Scene.from_json(text) for text in real.scenes]
        if extra:
            if len(real.uids) < config.limit + extra:
                raise RecapError(
                    f"{config.eval} has {len(real.uids)} images: not enough for {config.limit} eval and {extra} "
                    "validation prompts (lower --limit or --validation)"
                )
            self.validation = (real.captions[config.limit :], scenes[config.limit :])
            real.captions, scenes = real.captions[: config.limit], scenes[: config.limit]
            real.uids, real.images = real.uids[: config.limit], real.images[: config.limit]
        self.uids, self.real_images, self.scenes = real.uids, real.images, scenes
        if config.prompt_table:
            table = pq.read_table(config.prompt_table, columns=["uid", config.prompt_column]).to_pylist()
            by_uid = {row["uid"]: row[config.prompt_column] for row in table}
            missing = [uid for uid in self.uids if not by_uid.get(uid)]
            if missing:
                raise RecapError(
                    f"{config.prompt_table} has no {config.prompt_column!r} for {len(missing)} of the "
                    f"{len(self.uids)} eval images (first uid {missing[0]}): caption the eval split's images first"
                )
            self.prompts = [by_uid[uid] for uid in self.uids]
        elif config.prompt_column == "caption":
            self.prompts = list(real.captions)
        else:
            raise RecapError(f"--prompt-column {config.prompt_column!r} needs --prompt-table")
        self.real_features = self.clip_features(self.real_images)
        self.real_clip_score = float(np.mean(self.clip_scores(self.real_images, self.prompts)))
        if config.concepts:
            self._load_concepts(config.concepts)

    def _load_concepts(self, world: str) -> None:
        """The training world's concept counts, their thirds, and one single-object prompt per concept."""
        from recap.evaluation.concept_eval import diversity_prompt, training_concepts
        from recap.world.concepts import concept_name

        concepts, self.concept_counts, self.thirds = training_concepts(world)
        self.diversity_prompts = {
            concept_name(shape, colour): diversity_prompt(shape, colour, self.positions[0])
            for shape, colour in concepts
        }

    def _clip_input(self, images: np.ndarray) -> np.ndarray:
        from PIL import Image

        side = self.clip.visual.image_size
        side = side[0] if isinstance(side, tuple) else side
        if images.shape[1] == side:
            return images
        return np.stack([np.asarray(Image.fromarray(image).resize((side, side), Image.BICUBIC)) for image in images])

    def clip_features(self, images: np.ndarray) -> np.ndarray:
        import torch

        from recap.models.clip import image_tensor

        with torch.no_grad():
            return self.clip.encode_image(image_tensor(self._clip_input(images), self.clip)).numpy()

    def clip_scores(self, images: np.ndarray, prompts: list[str]) -> list[float]:
        from recap.models.clip import clip_scores

        scores, _ = clip_scores(self.clip, self.tokenizer, self._clip_input(images), prompts)[0]
        return scores

    def choose_scale(self, label: str, model, default: float) -> tuple[float, dict]:
        """The guidance scale with the best judged object accuracy on the validation prompts (the first of equals),
        and each scale's accuracy; `default` when no scales are given."""
        from recap.models.judge import judge_images

        config = self.config
        if not config.scales:
            return default, {}
        prompts, scenes = self.validation
        tried = {}
        for scale in config.scales:
            images = self._generate(model, prompts, f"{label}: validation, scale {scale}", scale)
            scores = prompt_attribute_scores(scenes, judge_images(self.judge, images), self.positions)
            tried[scale] = scores["object_accuracy"]
        return max(tried, key=lambda scale: (tried[scale], -config.scales.index(scale))), tried

    def _generate(self, model, prompts: list[str], desc: str, scale: float, **options) -> np.ndarray:
        config = self.config
        bar = progress_bar(total=len(prompts), desc=desc, unit="img", disable=not self.progress, leave=False)
        images = model.generate(
            prompts,
            scale=scale,
            steps=config.steps,
            scheduler=config.scheduler,
            seed=config.seed,
            batch_size=config.batch_size,
            skip_bricks=config.skip_bricks,
            progress=bar.update,
            **options,
        )
        bar.close()
        return images

    def evaluate(self, label: str, folder: str) -> dict:
        from recap.evaluation.frechet import frechet_distance_of
        from recap.evaluation.image_grid import save_grid
        from recap.models.judge import judge_images
        from recap.models.t2i import DEFAULT_GUIDANCE_SCALE, load_t2i

        config, out = self.config, Path(self.config.out)
        model = load_t2i(folder)
        recorded = float(model.info.get("guidance_scale", DEFAULT_GUIDANCE_SCALE))
        if model.one_step:  # one network call, no guidance: no scale to choose
            scale, tried = None, {}
        else:
            scale, tried = self.choose_scale(label, model, recorded if config.scale is None else config.scale)
        started = time.perf_counter()
        images = self._generate(model, self.prompts, f"{label}: drawing", scale)
        seconds = time.perf_counter() - started
        judged = judge_images(self.judge, images)
        features = self.clip_features(images)
        result = {
            "model": str(folder),
            "prompt_attribute": prompt_attribute_scores(self.scenes, judged, self.positions),
            "clip_score": float(np.mean(self.clip_scores(images, self.prompts))),
            "frechet_distance": frechet_distance_of(features, self.real_features),
            "scale": scale,
            "validation_object_accuracy_by_scale": {str(scale): value for scale, value in tried.items()},
            "text_cut": model.conditioner.cut,
            "draw_seconds": round(seconds, 1),
            "images_per_s": round(len(images) / seconds, 2) if seconds else None,
            "network_calls_per_image": model.network_calls(config.steps),
            "process": model.process,
            "bricks": model.num_bricks,
            "skip_bricks": config.skip_bricks if model.num_bricks else None,
            "one_step": model.one_step,
            "training": model.info.get("training", {}),
        }
        count = min(config.grid_images, len(images))
        result["grid"] = str(save_grid(out / "grids" / f"{label}.png", images[:count], self.prompts[:count]))
        np.save(out / f"{label}-images.npy", images)
        if config.concepts:
            result["concepts"] = self.concept_checks(label, model, scale, judged, features)
        if config.negatives and not model.one_step:  # a negative prompt needs guidance
            result["negatives"] = self.negative_checks(label, model, scale)
        return result

    def concept_checks(self, label: str, model, scale: float | None, judged, features: np.ndarray) -> dict:
        """Per-concept and per-third accuracy, FD and diversity (`concept_eval.py`)."""
        from recap.evaluation.concept_eval import concept_scores, mean_pairwise_cosine_distance

        seeds = self.config.diversity_seeds
        names = list(self.diversity_prompts)
        prompts = [self.diversity_prompts[name] for name in names for _ in range(seeds)]
        drawn = self.clip_features(self._generate(model, prompts, f"{label}: diversity", scale))
        diversity = {
            name: round(mean_pairwise_cosine_distance(drawn[i * seeds : (i + 1) * seeds]), 4)
            for i, name in enumerate(names)
        }
        scores = concept_scores(
            scenes=self.scenes,
            judged=judged,
            positions=self.positions,
            features=features,
            real_features=self.real_features,
            counts=self.concept_counts,
            thirds=self.thirds,
            diversity=diversity,
        )
        return {"world": str(self.config.concepts), "diversity_seeds": seeds, **scores}

    def _judge_each_mode(self, model, prompts: list[str], negatives, desc: str, scale: float) -> dict:
        """mode -> judged cells of `prompts` drawn with no negative, the plain negative and Perp-Neg."""
        from recap.models.judge import judge_images

        judged = {}
        for mode in ("none", "negative", "perp-neg"):
            options = {} if mode == "none" else {"negative_prompts": negatives, "guidance": mode}
            if mode == "perp-neg":
                options["negative_scale"] = self.config.negative_scale
            images = self._generate(model, prompts, f"{desc} ({mode})", scale, **options)
            judged[mode] = judge_images(self.judge, images)
        return judged

    def negative_checks(self, label: str, model, scale: float) -> dict:
        """The two negative-prompt checks (module docstring), each with no negative, the plain negative and
        Perp-Neg, on the same prompts and seed."""
        config = self.config
        colour = config.negative_colour
        without = [i for i, scene in enumerate(self.scenes) if all(o.colour != colour for o in scene.objects)]
        without = without[: config.negative_limit]
        prompts = [self.prompts[i] for i in without]
        by_mode = self._judge_each_mode(model, prompts, colour, f"{label}: negative {colour!r}", scale)
        colour_rates = {
            mode: float(np.mean([any(c and c["colour"] == colour for c in cells) for cells in judged]))
            for mode, judged in by_mode.items()
        }
        chosen = list(range(min(config.negative_limit, len(self.prompts))))
        prompts = [self.prompts[i] for i in chosen]
        firsts = [self.scenes[i].objects[0] for i in chosen]
        own = [object_phrase(obj) for obj in firsts]
        by_mode = self._judge_each_mode(model, prompts, own, f"{label}: own object as negative", scale)
        drawn = {
            mode: [_draws(cells, obj.position, obj) for cells, obj in zip(judged, firsts, strict=True)]
            for mode, judged in by_mode.items()
        }
        removed = {mode: 1.0 - float(np.mean(values)) for mode, values in drawn.items()}
        # Paired on the seed: of the images whose object is drawn with no negative, the share a negative removes
        # (the unpaired rate above also counts the many images that never had the object).
        had = [i for i, value in enumerate(drawn["none"]) if value]
        removed_when_drawn = {
            mode: float(np.mean([not drawn[mode][i] for i in had])) if had else None
            for mode in ("negative", "perp-neg")
        }
        return {
            "colour": colour,
            "colour_prompts": len(without),
            "colour_rate": colour_rates,  # share of images with an object of the negative colour
            "own_object_prompts": len(chosen),
            "own_object_removed": removed,  # share of images whose first prompted object is not drawn
            "own_object_drawn_without_negative": len(had),
            "own_object_removed_when_drawn": removed_when_drawn,
        }

    def run(self) -> dict:
        config, out = self.config, Path(self.config.out)
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        results = {label: self.evaluate(label, folder) for label, folder in config.folders().items()}
        report = {
            "config": {key: value for key, value in asdict(config).items() if key != "models_labels"},
            "prompts": len(self.prompts),
            "prompt_source": f"{config.prompt_table}:{config.prompt_column}" if config.prompt_table else "truth",
            "judge": {"folder": str(config.judge or "shipped"), "accuracy": self.judge.metadata.get("accuracy")},
            "real_images": {"clip_score": self.real_clip_score},
            "models": results,
            "seconds": round(time.perf_counter() - started, 1),
        }
        (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "eval.md").write_text(markdown_report(report))
        return report


def markdown_report(report: dict) -> str:
    """The eval as Markdown: one row per model, then the negative-prompt checks."""
    lines = [
        f"# Text-to-image eval: {report['prompts']} prompts ({report['prompt_source']})",
        "",
        "| model | CFG scale | object accuracy | presence | shape | colour | size | unprompted | CLIP score | FD "
        "| calls / image | images/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, result in report["models"].items():
        scores = result["prompt_attribute"]
        cells = [scores[name] * 100 for name in ("object_accuracy", "presence", "shape", "colour", "size")]
        cells.append(scores["unprompted_rate"] * 100)
        scale = "- (one step)" if result["scale"] is None else f"{result['scale']:g}"
        speed = result.get("images_per_s")
        lines.append(
            f"| {label} | {scale} | "
            + " | ".join(f"{value:.1f}" for value in cells)
            + f" | {result['clip_score']:.1f} | {result['frechet_distance']:.2f} | "
            + f"{result.get('network_calls_per_image', '-')} | {'-' if speed is None else f'{speed:.1f}'} |"
        )
    lines += [
        f"| real images (32 px) | - | - | - | - | - | - | - | {report['real_images']['clip_score']:.1f} | 0 | - | - |",
        "",
        "Percentages of prompted objects, judged; unprompted: share of empty cells drawn in. CLIP score: 100 x "
        "max(cos, 0) with the reference CLIP; FD: Frechet distance to the real eval images in its embedding space; "
        "calls / image: denoiser calls (steps x guidance branches; 1 for a one-step generator); images/s: drawing "
        "alone, on this machine.",
    ]
    chosen = {label: r["validation_object_accuracy_by_scale"] for label, r in report["models"].items()}
    if any(chosen.values()):
        lines += [
            "",
            "CFG scale chosen per model by judged object accuracy on the validation prompts (after the eval's): "
            + "; ".join(
                f"{label}: " + ", ".join(f"{scale} -> {100 * value:.1f}" for scale, value in tried.items())
                for label, tried in chosen.items()
            )
            + ".",
        ]
    lines += concept_lines(report)
    negatives = {label: result["negatives"] for label, result in report["models"].items() if "negatives" in result}
    if negatives:
        lines += [
            "",
            "## Negative prompts",
            "",
            "| model | check | no negative | plain negative | Perp-Neg |",
            "|---|---|---|---|---|",
        ]
        for label, check in negatives.items():
            rates, removed = check["colour_rate"], check["own_object_removed"]
            lines.append(
                f"| {label} | images with a {check['colour']} object (negative {check['colour']!r}, "
                f"{check['colour_prompts']} prompts) | "
                + " | ".join(f"{rates[mode] * 100:.1f}" for mode in ("none", "negative", "perp-neg"))
                + " |"
            )
            lines.append(
                f"| {label} | first object removed (negative: that object, {check['own_object_prompts']} prompts) | "
                + " | ".join(f"{removed[mode] * 100:.1f}" for mode in ("none", "negative", "perp-neg"))
                + " |"
            )
            paired = check.get("own_object_removed_when_drawn") or {}
            if paired.get("negative") is not None:
                lines.append(
                    f"| {label} | of the {check['own_object_drawn_without_negative']} images that draw it with no "
                    "negative, first object removed | 0.0 | "
                    + " | ".join(f"{paired[mode] * 100:.1f}" for mode in ("negative", "perp-neg"))
                    + " |"
                )
    for label, result in report["models"].items():
        lines += ["", f"![{label}]({Path(result['grid']).relative_to(Path(report['config']['out']))})"]
    return "\n".join(lines) + "\n"


def concept_lines(report: dict) -> list[str]:
    """The per-third table of the models evaluated with `concepts` (none: no lines)."""
    models = {label: result["concepts"] for label, result in report["models"].items() if "concepts" in result}
    if not models:
        return []
    lines = [
        "",
        "## By concept frequency in training",
        "",
        "| model | third | concepts | training objects | eval objects | object accuracy | FD | diversity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, concepts in models.items():
        for third, value in concepts["thirds"].items():
            accuracy = "-" if value["object_accuracy"] is None else f"{value['object_accuracy'] * 100:.1f}"
            fd = "-" if value["frechet_distance"] is None else f"{value['frechet_distance']:.2f}"
            diversity = "-" if value["diversity"] is None else f"{value['diversity']:.4f}"
            lines.append(
                f"| {label} | {third} | {value['concepts']} | {value['train_objects']} | {value['objects']} | "
                f"{accuracy} | {fd} | {diversity} |"
            )
    first = next(iter(models.values()))
    lines += [
        "",
        f"Thirds of the concepts (colour and shape) by their count in {first['world']}'s web split. Object "
        "accuracy: judged, of the eval prompts' objects of those concepts; FD: the images drawn for the prompts "
        "that mention one of them against the real images of the same prompts; diversity: mean pairwise cosine "
        f"distance of the reference CLIP's embeddings of {first['diversity_seeds']} draws of one single-object "
        "prompt per concept (eval.json has every concept).",
    ]
    return lines

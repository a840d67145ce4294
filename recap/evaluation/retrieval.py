"""Zero-shot retrieval and classification of a CLIP model on the world's eval split, COCO / Flickr30k in
Karpathy JSON, or any webdataset shards with a caption table.

Images are turned into model input by the recaption job's own function (`decode_image`, padded to square,
through `recap.training.pairs`, the loader training and caption evaluation use),
texts by the model's own tokenizer; the metrics are `retrieval_metrics.py`'s (clip_benchmark's conventions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recap.console import progress_bar
from recap.errors import RecapError
from recap.evaluation.retrieval_metrics import class_text_embeddings, retrieval_metrics, zero_shot_metrics
from recap.models.clip import ZERO_SHOT_TEMPLATES
from recap.training.pairs import load_pairs, model_input

TEMPLATES = ZERO_SHOT_TEMPLATES  # prompt templates for zero-shot classification, ensembled per class


@dataclass
class RetrievalSet:
    """Images (N, S, S, 3) uint8, texts, and the image index of each text (several texts per image)."""

    name: str
    images: np.ndarray
    texts: list[str]
    text_to_image: list[int]


@dataclass
class ClassificationSet:
    """Images, their class index, and the class names (images whose class is ambiguous are left out)."""

    name: str
    images: np.ndarray
    labels: list[int]
    classes: list[str]


def karpathy_set(annotations: str | Path, image_root: str | Path, size: int, split: str = "test") -> RetrievalSet:
    """COCO / Flickr30k in Karpathy's JSON (`images: [{filepath?, filename, split, sentences: [{raw}]}]`)."""
    path = Path(annotations)
    try:
        entries = json.loads(path.read_text())["images"]
    except (OSError, ValueError, KeyError) as error:
        raise RecapError(f"{path} is not a Karpathy-format JSON with an 'images' list ({error})") from None
    entries = [entry for entry in entries if entry.get("split") == split]
    if not entries:
        raise RecapError(f"{path} has no images in split {split!r}")
    images, texts, index = [], [], []
    for number, entry in enumerate(entries):
        file = Path(image_root) / entry.get("filepath", "") / entry["filename"]
        try:
            data = file.read_bytes()
        except OSError as error:
            raise RecapError(f"{path} image {number} ({entry['filename']}): cannot read {file} ({error})") from None
        images.append(model_input(data, size, str(file)))
        for sentence in entry["sentences"]:
            texts.append(sentence["raw"])
            index.append(number)
    return RetrievalSet(name=f"{path.stem}:{split}", images=np.stack(images), texts=texts, text_to_image=index)


def world_sets(
    split_folder: str | Path, size: int, thirds: dict[str, str] | None = None
) -> tuple[RetrievalSet, list[ClassificationSet]]:
    """The world's retrieval set (each image's detailed and short ground-truth captions) and its zero-shot tasks:
    brand (the mark's brand, which only alt-text names), shape and colour (the values this world's difficulty
    draws), each over the images whose objects all agree on it. With `thirds` (concept -> head / middle / tail of
    a training world's frequency, `recap.world.concepts.frequency_thirds`), also shape and colour over the images
    whose objects are all of one concept, per third: "shape@tail" and so on."""
    from recap.training.class_sets import world_class_sets
    from recap.world.generate import load_manifest
    from recap.world.scene import Scene

    folder = Path(split_folder)
    if not (folder / "truth.parquet").exists():
        raise RecapError(f"{folder} is not a world split folder (no truth.parquet)")
    difficulty = load_manifest(folder.parent)["difficulty"]  # the classes this world draws from
    class_sets = world_class_sets(folder.parent)  # what tune-clip's --classes brand / shape / colour tune for
    pairs = load_pairs(folder, size, progress=False)
    images, texts, index = pairs.images, [], []
    for number, captions in enumerate(zip(pairs.captions, pairs.short_captions, strict=True)):
        for text in captions:
            if text:
                texts.append(text)
                index.append(number)
    retrieval = RetrievalSet(name=f"world:{folder.name}", images=images, texts=texts, text_to_image=index)
    tasks = []
    for task, attribute in (("brand", "mark"), ("shape", "shape"), ("colour", "colour")):
        classes = class_sets[task]
        chosen, labels = [], []
        for number, scene in enumerate(pairs.scenes):
            values = {getattr(obj, attribute) for obj in Scene.from_json(scene).objects} - {None}
            if len(values) == 1:
                chosen.append(number)
                labels.append(classes.index(values.pop()))
        tasks.append(ClassificationSet(name=task, images=images[chosen], labels=labels, classes=classes))
    if thirds:
        tasks += _concept_third_tasks(pairs.scenes, images, difficulty, thirds)
    return retrieval, tasks


def _concept_third_tasks(scenes: list[str], images: np.ndarray, difficulty: dict, thirds: dict[str, str]):
    """Zero-shot shape and colour per third, over the images whose objects all share one concept."""
    from recap.world.concepts import THIRDS, concept_name
    from recap.world.scene import Scene

    by_third: dict[str, list[tuple[int, str, str]]] = {third: [] for third in THIRDS}
    for number, scene in enumerate(scenes):
        concepts = {(obj.shape, obj.colour) for obj in Scene.from_json(scene).objects}
        if len(concepts) == 1:
            shape, colour = concepts.pop()
            by_third[thirds[concept_name(shape, colour)]].append((number, shape, colour))
    tasks = []
    for third, rows in by_third.items():
        if not rows:  # no image of a single concept of this third: no task
            continue
        chosen = [number for number, _, _ in rows]
        for task, classes, position in (
            ("shape", list(difficulty["shapes"]), 1),
            ("colour", list(difficulty["colours"]), 2),
        ):
            labels = [classes.index(row[position]) for row in rows]
            tasks.append(
                ClassificationSet(name=f"{task}@{third}", images=images[chosen], labels=labels, classes=classes)
            )
    return tasks


def shards_set(
    shards: str, table: str, size: int, column: str = "re_caption", limit: int | None = None
) -> RetrievalSet:
    """Webdataset shards joined on uid with a caption table (the recaption job's output or a release table):
    one text per image, from `column` (`re_caption` or `org_caption`); samples the job marked bad, and rows
    with no text in `column`, are left out."""
    from recap.io_utils import read_caption_table
    from recap.stages.webdataset_reader import list_shards
    from recap.training.shard_rows import decoded_rows

    rows = read_caption_table(table, ["uid", column], hint="use --column").to_pylist()
    text_of = {row["uid"]: row[column] for row in rows if row[column]}
    images, texts = [], []
    for row in decoded_rows(list_shards(shards), size, text_of):
        if row.ok and row.joined is not None:
            images.append(row.image())
            texts.append(row.joined)
        if limit is not None and len(images) >= limit:
            break
    if not images:
        raise RecapError(f"no sample of {shards} has a {column!r} text in {table} (joined on uid)")
    return RetrievalSet(
        name=f"shards:{column}", images=np.stack(images), texts=texts, text_to_image=list(range(len(texts)))
    )


def _encode_images(model, images: np.ndarray, batch: int):
    import torch

    from recap.models.clip import image_tensor

    with torch.no_grad():
        parts = [model.encode_image(image_tensor(images[i : i + batch], model)) for i in range(0, len(images), batch)]
    features = torch.cat(parts)
    return (features / features.norm(dim=-1, keepdim=True)).numpy()


def _encode_texts(model, tokenizer, texts: list[str], batch: int):
    import torch

    with torch.no_grad():
        parts = [model.encode_text(tokenizer(texts[i : i + batch])) for i in range(0, len(texts), batch)]
    features = torch.cat(parts)
    return (features / features.norm(dim=-1, keepdim=True)).numpy()


def evaluate_retrieval(model, tokenizer, data: RetrievalSet, *, batch: int = 256) -> dict:
    images = _encode_images(model, data.images, batch)
    texts = _encode_texts(model, tokenizer, data.texts, batch)
    metrics = retrieval_metrics(texts @ images.T, data.text_to_image)
    return {"images": len(data.images), "texts": len(data.texts), **metrics}


def evaluate_zero_shot(
    model, tokenizer, data: ClassificationSet, *, batch: int = 256, templates: tuple[str, ...] = TEMPLATES
) -> dict:
    """Zero-shot top-1 and mean per-class recall with each class's `templates` ensembled."""
    prompts = [template.format(name) for name in data.classes for template in templates]
    classes = class_text_embeddings(_encode_texts(model, tokenizer, prompts, batch), len(data.classes))
    return zero_shot_with_class_features(model, classes, data, batch=batch)


def zero_shot_with_class_features(model, classes: np.ndarray, data: ClassificationSet, *, batch: int = 256) -> dict:
    """Zero-shot metrics of `data` against given (K, D) unit class features (templates, or learned prompts)."""
    logits = _encode_images(model, data.images, batch) @ np.asarray(classes).T
    return {"images": len(data.images), "classes": len(data.classes), **zero_shot_metrics(logits, data.labels)}


def evaluate(model, tokenizer, retrieval: RetrievalSet, tasks: list[ClassificationSet], progress: bool = True) -> dict:
    """Retrieval and every zero-shot task: {"retrieval": {...}, "zero_shot": {task: {...}}}."""
    steps = progress_bar([retrieval, *tasks], desc="evaluating", unit="task", disable=not progress)
    results: dict = {"dataset": retrieval.name, "zero_shot": {}}
    for data in steps:
        if isinstance(data, RetrievalSet):
            results["retrieval"] = evaluate_retrieval(model, tokenizer, data)
        else:
            results["zero_shot"][data.name] = evaluate_zero_shot(model, tokenizer, data)
    return results


def markdown_report(results: dict, model: str) -> str:
    """The results as a Markdown page (what `recap eval-retrieval` writes beside the JSON)."""
    retrieval = results["retrieval"]
    lines = [f"# Retrieval: {model} on {results['dataset']}", ""]
    lines += [f"{retrieval['images']} images, {retrieval['texts']} texts.", ""]
    lines += ["| direction | R@1 | R@5 | R@10 |", "|---|---|---|---|"]
    for direction in ("image_to_text", "text_to_image"):
        values = " | ".join(f"{retrieval[f'{direction}_R@{k}']:.3f}" for k in (1, 5, 10))
        lines.append(f"| {direction.replace('_', ' ')} | {values} |")
    lines += ["", f"mean_recall@1: **{retrieval['mean_recall@1']:.3f}**", ""]
    if results["zero_shot"]:
        lines += ["| zero-shot task | images | classes | top-1 | mean per-class recall |", "|---|---|---|---|---|"]
        for task, value in results["zero_shot"].items():
            lines.append(
                f"| {task} | {value['images']} | {value['classes']} | {value['top1']:.3f} | "
                f"{value['mean_per_class_recall']:.3f} |"
            )
    return "\n".join(lines) + "\n"

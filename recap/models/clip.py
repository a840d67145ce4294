"""CLIP through open_clip: the project's tiny configs, their byte-level BPE tokenizer, and CLIP folders.

    model, preprocess, tokenizer = load_clip("runs/clip/model")           # a CLIP folder (below)
    model, preprocess, tokenizer = load_clip("ViT-B-16", pretrained="/models/vit_b_16.bin")   # any open_clip model

Tiny configs live in `recap/models/clip_configs/` and are registered with `open_clip.add_model_config`, so
`open_clip.create_model_and_transforms("recap-clip-tiny", pretrained=STATE_DICT)` builds and loads them like
any open_clip model. They use a 1,024-token BPE (trained on the world's texts) through open_clip's own
HF-tokenizer path, which makes a tiny model 5x smaller and faster than CLIP's 49,408-token vocabulary; real
models keep their own tokenizer. A CLIP folder is open_clip's `local-dir:` layout (`open_clip_config.json`,
`open_clip_model.safetensors`, and the tokenizer's files): `open_clip.create_model_and_transforms(
"local-dir:/abs/folder")` and `open_clip.get_tokenizer("local-dir:/abs/folder")` load it without recap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

CONFIG_DIR = Path(__file__).resolve().parent / "clip_configs"
PAD_TOKEN, EOS_TOKEN = "<pad>", "<eos>"  # ids 0 and 1, as the tiny configs' pad_id / eos_id say
CONFIG_FILE, WEIGHTS_FILE = "open_clip_config.json", "open_clip_model.safetensors"
# Zero-shot prompt templates, ensembled per class as CLIP does for ImageNet (eval-retrieval; tune-clip's start).
ZERO_SHOT_TEMPLATES = ("{}", "a {}.", "a photo of a {}.", "an image showing a {}.", "a {} on a plain background.")
_registered = False


def register_configs() -> list[str]:
    """Register the tiny configs with open_clip (once); return their names."""
    global _registered
    import open_clip

    if not _registered:
        open_clip.add_model_config(CONFIG_DIR)
        _registered = True
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def model_config(name: str) -> dict:
    """An open_clip model's config (a tiny one registered first); KeyError naming the known ones."""
    import open_clip

    register_configs()
    config = open_clip.get_model_config(name)
    if config is None:
        raise KeyError(f"no open_clip model config {name!r}; known: {', '.join(open_clip.list_models()[:8])} ...")
    return json.loads(json.dumps(config))


def train_clip_tokenizer(texts: Iterable[str], vocab_size: int, out: str | Path):
    """A lower-casing byte-level BPE with `<pad>` = 0 and `<eos>` = 1 that appends `<eos>` to every text (the tiny
    configs pool the text tower's output there, and truncation keeps it), padding on the right; saved as an HF
    tokenizer folder at `out`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.Lowercase()  # open_clip's HFTokenizer does not lowercase; the tokenizer does
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(single=f"$A {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN, padding_side="right"
    )
    tokenizer.save_pretrained(out)
    return tokenizer


def new_clip(name: str, tokenizer_folder: str | Path, *, seed: int = 0):
    """A randomly initialised CLIP of config `name` whose text tower uses the BPE in `tokenizer_folder`:
    `(model, preprocess, tokenizer, model_cfg)`."""
    import open_clip
    import torch

    config = model_config(name)
    text_cfg = dict(config["text_cfg"], hf_tokenizer_name=str(Path(tokenizer_folder).resolve()))
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(name, text_cfg=text_cfg)
    tokenizer = open_clip.tokenizer.HFTokenizer(
        text_cfg["hf_tokenizer_name"], context_length=text_cfg["context_length"]
    )
    return model, preprocess, tokenizer, dict(config, text_cfg=text_cfg)


def save_clip_folder(model, model_cfg: dict, tokenizer, out: str | Path) -> Path:
    """Write `model` as open_clip's `local-dir:` layout (config, safetensors weights, tokenizer files)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text_cfg = dict(model_cfg["text_cfg"])
    if text_cfg.get("hf_tokenizer_name"):
        text_cfg["hf_tokenizer_name"] = "recap-bpe"  # any name: local-dir loading reads the tokenizer from the folder
        tokenizer.save_pretrained(out)
    visual = model.visual
    preprocess_cfg = {"mean": list(visual.image_mean), "std": list(visual.image_std), "interpolation": "bicubic"}
    preprocess_cfg["size"] = list(visual.image_size) if isinstance(visual.image_size, tuple) else visual.image_size
    payload = {"model_cfg": dict(model_cfg, text_cfg=text_cfg), "preprocess_cfg": preprocess_cfg}
    (out / CONFIG_FILE).write_text(json.dumps(payload, indent=2) + "\n")
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE))
    return out


def load_clip(reference: str, *, pretrained: str | None = None, device: str = "cpu"):
    """`(model, preprocess, tokenizer)` in eval mode, from a CLIP folder (or `local-dir:FOLDER`), or an open_clip
    model name with an optional local `pretrained` checkpoint (tiny names registered first)."""
    import open_clip

    register_configs()
    folder = Path(reference.removeprefix("local-dir:"))
    if (folder / CONFIG_FILE).is_file():
        reference, pretrained = f"local-dir:{folder.resolve()}", None
    model, _, preprocess = open_clip.create_model_and_transforms(reference, pretrained=pretrained, device=device)
    return model.eval(), preprocess, open_clip.get_tokenizer(reference)


def image_tensor(pixels: np.ndarray, model):
    """(N, S, S, 3) uint8 images, already square at the model's size (`decode_image`), -> the normalised
    float tensor the vision tower takes, with the model's own mean and std."""
    import torch

    side = model.visual.image_size
    side = side[0] if isinstance(side, tuple) else side
    if pixels.ndim != 4 or pixels.shape[1:] != (side, side, 3):
        raise ValueError(f"expected images of shape (N, {side}, {side}, 3), got {pixels.shape}")
    mean = torch.tensor(model.visual.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.image_std).view(1, 3, 1, 1)
    images = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 255.0
    return (images - mean) / std


def text_token_counts(tokenizer, texts: list[str]) -> list[int]:
    """How many tokens each text takes in the text tower's input before truncation, special tokens included:
    more than `tokenizer.context_length` means the tower sees it cut. Works for open_clip's `SimpleTokenizer`
    (start and end tokens added) and its `HFTokenizer` (the tiny configs' BPE appends its own `<eos>`)."""
    if hasattr(tokenizer, "encode") and hasattr(tokenizer, "sot_token_id"):
        return [len(tokenizer.encode(text)) + 2 for text in texts]
    inner = getattr(tokenizer, "tokenizer", None)
    if inner is None:
        raise TypeError(f"cannot count tokens with a {type(tokenizer).__name__}")
    return [len(ids) for ids in inner(list(texts), add_special_tokens=True)["input_ids"]]


def clip_scores(model, tokenizer, pixels: np.ndarray, *captions: list[str | None]) -> list[tuple[list, list]]:
    """CLIP scores of N images against each list of N captions, encoding every image once: per list, the scores
    (100 x max(cosine, 0): the CLIPScore paper's clipping, on torchmetrics' 0-100 scale; None where the caption
    is None or empty) and whether each scored caption was cut at the model's context length.
    `pixels` are (N, S, S, 3) uint8 images at the model's size."""
    import torch

    results = []
    wanted = [index for index in range(len(pixels)) if any(texts[index] for texts in captions)]
    device = next(model.parameters()).device
    with torch.no_grad():
        images = model.encode_image(image_tensor(pixels[wanted], model).to(device)) if wanted else None
        row_of = {index: row for row, index in enumerate(wanted)}
        for texts in captions:
            scores: list[float | None] = [None] * len(texts)
            truncated: list[bool | None] = [None] * len(texts)
            todo = [index for index, text in enumerate(texts) if text]
            if todo:
                features = model.encode_text(tokenizer([texts[index] for index in todo]).to(device))
                cosine = torch.nn.functional.cosine_similarity(images[[row_of[i] for i in todo]], features, dim=-1)
                counts = text_token_counts(tokenizer, [texts[index] for index in todo])
                for index, value, count in zip(todo, cosine.tolist(), counts, strict=True):
                    scores[index] = 100.0 * max(value, 0.0)
                    truncated[index] = count > tokenizer.context_length
            results.append((scores, truncated))
    return results

"""CoOp-style learned prompts for open_clip text towers, and the file a CLIP folder carries them in.

A `TemplateContext` holds context vectors that take the place of a template's words before the class name:
with the template "a photo of a {}." the prompt of class "circle" is "[ctx] circle." where [ctx] is the learned
token embeddings initialised from those of "a photo of a" (4 with CLIP's tokenizer, 5 with the tiny configs'
BPE, which splits "photo"); words after the class stay fixed. The text features run through the frozen text
tower (`encode_text_embeddings`: open_clip's own forward with the token embeddings given instead of looked
up), so before any step a learned prompt's features equal its template's exactly.

A `PromptLearner` learns one context per template for one class set and ensembles their features as zero-shot
evaluation ensembles its templates. Its default templates are eval-retrieval's five (`ZERO_SHOT_TEMPLATES`;
"{}" has no words, so its prompts stay fixed), so tuning starts from the zero-shot classifier that
eval-retrieval reports; with the one template "a photo of a {}." it is the authors' learner.

The context is shared by the classes of a class set (CoOp's unified context; POUF's `PromptLearner` in
korawat-tanwisuth/POUF `pouf_lvm/examples/pouf/image_classification/clip_classifier.py`). Where this differs
from there: the context is found by tokenising the template (so a tokenizer without a start token, like the
tiny configs' BPE, and a word of several tokens work) instead of by counting words after the start token; and
several templates may be learned and ensembled (the authors learn one).

`save_learned_prompts` writes FOLDER/pouf_prompt.pt beside an open_clip folder's weights; `load_learned_prompts`
rebuilds the learners for the model it is loaded with (the frozen token embeddings come from that model).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from recap.models.clip import ZERO_SHOT_TEMPLATES

PROMPT_FILE = "pouf_prompt.pt"
PROMPT_FORMAT, PROMPT_VERSION = "recap-pouf-prompt", 1


def _common_length(first: torch.Tensor, second: torch.Tensor) -> int:
    differs = (first != second).nonzero()
    return int(differs[0]) if len(differs) else len(first)


def context_span(tokenizer, template: str, classes: list[str]) -> tuple[torch.Tensor, int, int]:
    """The (K, L) token ids of `template` filled with each class, and the positions [start, end) of the words
    before the class (the context to learn; empty for "{}"), the same in every prompt. ValueError if the
    template has not exactly one "{}", or if its words tokenise differently before some class."""
    parts = template.split("{}")
    if len(parts) != 2:
        raise ValueError(f"a prompt template needs exactly one {{}} for the class: got {template!r}")
    if not classes or any(not name.strip() for name in classes):
        raise ValueError("a class set needs at least one class, and no empty class name")
    tokens = tokenizer([template.format(name) for name in classes])
    empty = tokenizer([""])[0]
    start = _common_length(empty, tokens[0])  # after the start token, when the tokenizer has one
    prefix = parts[0].rstrip()
    if not prefix:
        return tokens, start, start
    stop_token = empty[start]  # what follows the last word: the end token
    alone = tokenizer([prefix])[0]
    end = start + int((alone[start:] == stop_token).nonzero()[0])
    for name, row in zip(classes, tokens, strict=True):
        if not torch.equal(row[:end], alone[:end]) or row[end] == stop_token:
            raise ValueError(f"the words of {template!r} tokenise differently before the class {name!r}")
    return tokens, start, end


def ensemble(features: list[torch.Tensor]) -> torch.Tensor:
    """Per-template (K, D) class features -> (K, D) unit features: each normalised, averaged, normalised again
    (CLIP's prompt ensembling, as `retrieval_metrics.class_text_embeddings` does on numpy arrays)."""
    stacked = torch.stack([part / part.norm(dim=-1, keepdim=True) for part in features])
    mean = stacked.mean(dim=0)
    return mean / mean.norm(dim=-1, keepdim=True)


def template_text_features(model, tokenizer, classes: list[str], templates: tuple[str, ...]) -> torch.Tensor:
    """(K, D) unit class features of the templates' prompts, ensembled, through `model.encode_text` (with
    gradients: tune-clip's model mode)."""
    device = next(model.parameters()).device
    return ensemble([model.encode_text(tokenizer([t.format(c) for c in classes]).to(device)) for t in templates])


def _token_embedding(model) -> nn.Embedding:
    text = getattr(model, "text", None)
    return model.token_embedding if text is None else text.token_embedding


def encode_text_embeddings(model, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's text forward from (B, L, D) token embeddings instead of ids: positional embedding, causal
    transformer, final norm, pooling at the end token of `tokens` (B, L), projection. Unnormalised, like
    `model.encode_text(tokens)`, which it equals when `embeddings` are the ids' own embeddings. Works for
    open_clip's CLIP (text parts on the model) and CustomTextCLIP with its TextTransformer; TypeError for
    other text towers (Hugging Face ones, CoCa's class token)."""
    from open_clip.transformer import TextTransformer, text_global_pool

    text = getattr(model, "text", None)
    if text is None:  # open_clip's CLIP: encode_text's steps
        tower, pool_type, eos_id = model, model.text_pool_type, getattr(model, "text_eos_id", None)
        attn_mask, positional = model.attn_mask, model.positional_embedding
    elif isinstance(text, TextTransformer) and text.cls_emb is None:  # TextTransformer.forward's steps
        tower, pool_type, eos_id, attn_mask = text, text.pool_type, text.eos_id, text.attn_mask
        if text.use_pad_mask:
            pad_mask = text._build_additive_mask(tokens, tokens.shape[1], embeddings.dtype)
            attn_mask = pad_mask if attn_mask is None else attn_mask[: tokens.shape[1], : tokens.shape[1]] + pad_mask
        positional = text.positional_embedding[: tokens.shape[1]]
    else:
        raise TypeError(f"learned prompts need open_clip's own text transformer, not a {type(text).__name__}")
    cast_dtype = tower.transformer.get_cast_dtype()
    x = embeddings.to(cast_dtype) + positional.to(cast_dtype)
    x = tower.ln_final(tower.transformer(x, attn_mask=attn_mask))
    pooled = text_global_pool(x, tokens, pool_type, eos_token_id=eos_id)
    projection = tower.text_projection
    if projection is None:
        return pooled
    return projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection


class TemplateContext(nn.Module):
    """The learned context of one template for one class set: `context` (n_ctx, D) replaces the embeddings of
    the template's words before the class (n_ctx 0 for "{}": its prompts stay fixed)."""

    def __init__(self, model, tokenizer, classes: list[str], template: str) -> None:
        super().__init__()
        self.template = template
        tokens, self.start, self.end = context_span(tokenizer, template, classes)
        device = _token_embedding(model).weight.device
        with torch.no_grad():
            embeddings = _token_embedding(model)(tokens.to(device))
        self.register_buffer("tokens", tokens.to(device), persistent=False)
        self.register_buffer("frozen_embeddings", embeddings.detach().clone(), persistent=False)
        self.context = nn.Parameter(embeddings[0, self.start : self.end].detach().clone())

    def prompt_embeddings(self) -> torch.Tensor:
        """(K, L, D): each prompt's token embeddings with the context in place of the template's words."""
        frozen = self.frozen_embeddings
        context = self.context.unsqueeze(0).expand(len(frozen), -1, -1)
        return torch.cat([frozen[:, : self.start], context, frozen[:, self.end :]], dim=1)

    def text_features(self, model) -> torch.Tensor:
        return encode_text_embeddings(model, self.prompt_embeddings(), self.tokens)


class PromptLearner(nn.Module):
    """Learned prompts for one class set: one `TemplateContext` per template, their features ensembled as
    zero-shot evaluation ensembles the templates. `text_features(model)` gives the (K, D) unit class features
    through `model`'s text tower, which must be the model the learner was built with (its token embeddings fill
    the rest of each prompt). The parameters are the contexts only."""

    def __init__(self, model, tokenizer, classes: list[str], templates: tuple[str, ...] = ZERO_SHOT_TEMPLATES) -> None:
        super().__init__()
        if not templates:
            raise ValueError("a prompt learner needs at least one template")
        self.classes, self.templates = list(classes), tuple(templates)
        self.prompts = nn.ModuleList([TemplateContext(model, tokenizer, self.classes, t) for t in self.templates])

    @property
    def contexts(self) -> list[nn.Parameter]:
        return [prompt.context for prompt in self.prompts]

    def text_features(self, model) -> torch.Tensor:
        return ensemble([prompt.text_features(model) for prompt in self.prompts])


def save_learned_prompts(
    folder: str | Path, learners: dict[str, PromptLearner], *, logit_scale: float, record: dict | None = None
) -> Path:
    """Write FOLDER/pouf_prompt.pt: per class set its classes, templates and learned contexts, the tuned
    logit scale (zero-shot ranks do not depend on it) and `record` (how it was tuned)."""
    payload = {
        "format": PROMPT_FORMAT,
        "version": PROMPT_VERSION,
        "class_sets": {
            name: {
                "classes": learner.classes,
                "templates": list(learner.templates),
                "contexts": [context.detach().cpu().clone() for context in learner.contexts],
            }
            for name, learner in learners.items()
        },
        "logit_scale": float(logit_scale),
        "record": record or {},
    }
    path = Path(folder) / PROMPT_FILE
    temporary = path.with_suffix(".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)
    return path


def read_prompt_file(folder: str | Path) -> dict | None:
    """FOLDER/pouf_prompt.pt as saved, or None when the folder carries no learned prompt."""
    path = Path(folder.removeprefix("local-dir:") if isinstance(folder, str) else folder) / PROMPT_FILE
    if not path.is_file():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != PROMPT_FORMAT or payload.get("version") != PROMPT_VERSION:
        raise ValueError(f"{path} is not a version {PROMPT_VERSION} {PROMPT_FORMAT} file")
    return payload


def load_learned_prompts(folder: str | Path, model, tokenizer) -> dict[str, PromptLearner]:
    """The learners saved in FOLDER (class set name -> learner, with its learned context), built on `model`;
    {} when the folder carries no learned prompt."""
    payload = read_prompt_file(folder)
    if payload is None:
        return {}
    learners = {}
    for name, saved in payload["class_sets"].items():
        learner = PromptLearner(model, tokenizer, saved["classes"], tuple(saved["templates"]))
        for template, context, value in zip(learner.templates, learner.contexts, saved["contexts"], strict=True):
            if value.shape != context.shape:
                raise ValueError(
                    f"{folder}: the learned context of {name!r} for {template!r} has shape {tuple(value.shape)}, "
                    f"but this model's tokenizer gives {tuple(context.shape)}"
                )
            with torch.no_grad():
                context.copy_(value)
        learners[name] = learner
    return learners

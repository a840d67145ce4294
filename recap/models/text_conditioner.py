"""The Recap-DiT's text condition: the per-token output of a frozen open_clip text tower (`TextConditioner`), with
long texts split at sentence ends into chunks that fit its context; and which text encoder a model folder names
(`resolve_text_encoder`, `text_encoder_fingerprint`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from recap.errors import RecapError

SHIPPED_TEXT_ENCODER = "shipped:clip-tiny"
CHUNKINGS = ("packed", "sentences")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (split after '.', '!' or '?' followed by white space); [""] for an empty text."""
    parts = [part for part in re.split(r"(?<=[.!?])\s+", text.strip()) if part]
    return parts or [""]


class TextConditioner:
    """Frozen per-token text features from an open_clip text tower: `(texts) -> (features (N, L, W), mask (N, L))`.

    `reference` is a CLIP folder, `shipped:clip-tiny`, or an open_clip model name (with `pretrained`). Texts that
    do not fit the context are split into sentence chunks (at most `max_chunks`); `cut` counts texts the tower
    saw cut (a sentence too long for the context, or more chunks than `max_chunks`)."""

    def __init__(
        self,
        reference: str = SHIPPED_TEXT_ENCODER,
        *,
        pretrained: str | None = None,
        max_chunks: int = 4,
        chunking: str = "packed",
    ):
        import torch

        from recap.models.clip import load_clip

        if chunking not in CHUNKINGS:
            raise RecapError(f"unknown text chunking {chunking!r}; choose one of {', '.join(CHUNKINGS)}")
        self.reference, self.pretrained, self.max_chunks, self.chunking = reference, pretrained, max_chunks, chunking
        self.model, _, self.tokenizer = load_clip(str(resolve_text_encoder(reference)), pretrained=pretrained)
        self.model.requires_grad_(False)
        self.tower = getattr(self.model, "text", self.model)  # CustomTextCLIP keeps its tower in .text
        if not all(hasattr(self.tower, name) for name in ("token_embedding", "transformer", "ln_final")):
            raise RecapError(
                f"the text tower of {reference} ({type(self.tower).__name__}) has no per-token output recap can read: "
                "use an open_clip model with its own text transformer"
            )
        self.width = self.tower.transformer.width
        self.context_length = self.tokenizer.context_length
        self.cut = 0
        self.torch = torch

    def chunks(self, text: str) -> list[str]:
        """`text` as the chunks the tower encodes one by one. "packed": one chunk if it fits, else sentences packed
        greedily into chunks that fit. "sentences": one chunk per sentence (each object of a world caption is
        then summed up at its own end token), packed as above only when there are more than `max_chunks`."""
        from recap.models.clip import text_token_counts

        text = text or ""
        sentences = split_sentences(text)
        if self.chunking == "sentences" and len(sentences) <= self.max_chunks:
            chunks = sentences
        elif text_token_counts(self.tokenizer, [text])[0] <= self.context_length:
            return [text]
        else:
            chunks = []
            for sentence in sentences:
                candidate = f"{chunks[-1]} {sentence}" if chunks else sentence
                if chunks and text_token_counts(self.tokenizer, [candidate])[0] <= self.context_length:
                    chunks[-1] = candidate
                else:
                    chunks.append(sentence)
        cut = len(chunks) > self.max_chunks
        cut = cut or any(count > self.context_length for count in text_token_counts(self.tokenizer, chunks))
        self.cut += int(cut)
        return chunks[: self.max_chunks]

    def token_features(self, tokens):
        """(N, context) token ids -> (N, context, width): the tower's output before pooling."""
        tower = self.tower
        x = tower.token_embedding(tokens) + tower.positional_embedding
        x = tower.transformer(x, attn_mask=tower.attn_mask)
        return tower.ln_final(x)

    def __call__(self, texts: list[str]):
        torch = self.torch
        per_text = [self.chunks(text) for text in texts]
        flat = [chunk for chunks in per_text for chunk in chunks]
        with torch.no_grad():
            tokens = self.tokenizer(flat)
            features = self.token_features(tokens)
        most = max(len(chunks) for chunks in per_text)
        length = most * self.context_length
        out = features.new_zeros(len(texts), length, self.width)
        mask = torch.zeros(len(texts), length, dtype=torch.long)
        row = 0
        for index, chunks in enumerate(per_text):
            for position in range(len(chunks)):
                span = slice(position * self.context_length, (position + 1) * self.context_length)
                out[index, span] = features[row]
                mask[index, span] = (tokens[row] != 0).long()  # open_clip pads with 0
                row += 1
        return out * mask.unsqueeze(-1), mask  # padding zeroed as well as masked


def resolve_text_encoder(reference: str) -> Path | str:
    """`shipped:clip-tiny` -> the shipped reference CLIP folder; anything else unchanged."""
    if reference == SHIPPED_TEXT_ENCODER:
        from recap.models.assets import shipped_clip

        return shipped_clip()
    return reference


def text_encoder_fingerprint(reference: str, pretrained: str | None = None) -> str | None:
    """sha256 of the text encoder's weights file (a CLIP folder's, or `pretrained`); None for a bare model name."""
    from recap.models.clip import WEIGHTS_FILE

    path = Path(str(resolve_text_encoder(reference)).removeprefix("local-dir:"))
    weights = path / WEIGHTS_FILE if path.is_dir() else Path(pretrained) if pretrained else None
    if weights is None or not weights.is_file():
        return None
    return hashlib.sha256(weights.read_bytes()).hexdigest()

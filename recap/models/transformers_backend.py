"""The transformers backend: AutoProcessor + AutoModelForImageTextToText, batched generation, left padding."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from recap.models.captioning import (
    CaptionerConfig,
    CaptionResult,
    finish_reason_from,
    instructions,
    render_prompt,
)


def resolve_device_and_dtype(device: str, dtype: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, getattr(torch, dtype)


class TransformersCaptioner:
    """Captions with any HF LLaVA-family checkpoint. Pass `model`/`processor` to wrap ones already in memory."""

    def __init__(self, config: CaptionerConfig, *, model=None, processor=None) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.config = config
        self.device, self.dtype = resolve_device_and_dtype(config.device, config.dtype)
        if processor is None:
            processor = AutoProcessor.from_pretrained(config.model, revision=config.revision)
        if model is None:
            model = AutoModelForImageTextToText.from_pretrained(
                config.model, revision=config.revision, dtype=self.dtype
            )
            model.to(self.device)
        self.processor = processor
        self.processor.tokenizer.padding_side = "left"  # right padding silently degrades batched generation
        self.model = model.eval()
        self.tokenizer = processor.tokenizer
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.stop_ids = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.stop_ids)
        self._torch = torch

    def _generate(self, images: Sequence[Image.Image], prompts: list[str]) -> list[CaptionResult]:
        torch = self._torch
        inputs = self.processor(
            text=prompts, images=list(images), return_tensors="pt", padding=True, add_special_tokens=False
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        sampling = self.config.temperature > 0
        if sampling:
            torch.manual_seed(self.config.seed)
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.config.max_new_tokens,
                do_sample=sampling,
                temperature=self.config.temperature if sampling else None,
                top_p=self.config.top_p if sampling else None,
                pad_token_id=self.pad_id,
                eos_token_id=sorted(self.stop_ids),
            )
        generated = output[:, inputs["input_ids"].shape[1] :].tolist()
        results = []
        for tokens in generated:
            stop_at = next((i for i, token in enumerate(tokens) if token in self.stop_ids), None)
            kept = tokens if stop_at is None else tokens[:stop_at]
            text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
            count = len(kept) + (stop_at is not None)
            results.append(
                CaptionResult(text=text, output_tokens=count, finish_reason=finish_reason_from(stop_at is not None))
            )
        return results

    def caption(
        self,
        images: Sequence[Image.Image],
        alt_texts: Sequence[str | None] | None = None,
        questions: Sequence[str] | None = None,
    ) -> list[CaptionResult]:
        """Caption `images` (RGB PIL images) in batches of `config.batch_size`, in order (a question preset
        answers `questions`, one per image)."""
        texts = instructions(self.config.preset, len(images), alt_texts, questions)
        prompts = [render_prompt(self.processor, text) for text in texts]
        results: list[CaptionResult] = []
        size = self.config.batch_size
        for start in range(0, len(images), size):
            results.extend(self._generate(images[start : start + size], prompts[start : start + size]))
        return results

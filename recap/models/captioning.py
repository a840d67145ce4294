"""What every captioner backend shares: its config, its result, its prompt and its finish reasons.

A leaf module: the backends import it, and `recap.models.captioner` (the backend registry) imports the
backends, so no two captioner modules import each other. Defaults follow the Recap-DataComp-1B paper: its
prompt, greedy decoding, at most 128 new tokens, and the checkpoint's own chat template and image processor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from recap.models.prompts import DEFAULT_PROMPT, PromptPreset, get_prompt
from recap.schema import FINISH_LENGTH, FINISH_STOP

# The backends `recap.models.captioner.load_captioner` can build (its registry maps each to a class).
BACKENDS = ("transformers", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# The xtuner LLaVA-LLaMA-3 conversation layout, for checkpoints that ship no chat template.
FALLBACK_TEMPLATE = (
    "<|start_header_id|>user<|end_header_id|>\n\n<image>\n{instruction}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)


@dataclass(kw_only=True)
class CaptionerConfig:
    """How to load and run a captioner. `model` is a local HF folder (or a hub id where a hub is reachable)."""

    model: str
    backend: str = "transformers"
    revision: str | None = None
    dtype: str = "auto"  # auto: bfloat16 on a GPU, float32 on the CPU
    device: str = "auto"  # auto: cuda when available
    batch_size: int = 8
    prompt: str = DEFAULT_PROMPT
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 = greedy, as in the paper
    top_p: float = 1.0
    seed: int = 0
    # vLLM only
    max_model_len: int | None = None
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        get_prompt(self.prompt)

    @property
    def preset(self) -> PromptPreset:
        return get_prompt(self.prompt)

    def generation_parameters(self) -> dict:
        """What decides the output, for the run manifest."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.temperature > 0,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "dtype": self.dtype,
        }


@dataclass(frozen=True)
class CaptionResult:
    """One caption. `output_tokens` counts generated tokens up to and including the stop token."""

    text: str
    output_tokens: int
    finish_reason: str  # "stop" or "length"


class Captioner(Protocol):
    """What a backend offers: built from a CaptionerConfig, captions RGB images in order (or, with a question
    preset such as "reasoning", answers one question per image)."""

    config: CaptionerConfig

    def caption(
        self,
        images: Sequence[Image.Image],
        alt_texts: Sequence[str | None] | None = None,
        questions: Sequence[str] | None = None,
    ) -> list[CaptionResult]: ...


def chat_template_of(processor) -> str | None:
    return getattr(processor, "chat_template", None) or getattr(
        getattr(processor, "tokenizer", None), "chat_template", None
    )


def render_prompt(processor, instruction: str) -> str:
    """The full prompt text for one image: the checkpoint's chat template with an image and the instruction.

    The result holds one `<image>` placeholder (or whatever the template emits); processors and vLLM expand it.
    """
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
    if chat_template_of(processor):
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return FALLBACK_TEMPLATE.format(instruction=instruction)


def instructions(
    preset: PromptPreset,
    count: int,
    alt_texts: Sequence[str | None] | None,
    questions: Sequence[str] | None = None,
) -> list[str]:
    """The instruction per image; alt-text presets need one alt-text per image, question presets one question."""
    for name, texts in (("alt-texts", alt_texts), ("questions", questions)):
        if texts is not None and len(texts) != count:
            raise ValueError(f"got {count} images but {len(texts)} {name}")
    if preset.uses_alt_text and alt_texts is None:
        raise ValueError(f"prompt preset {preset.id!r} needs alt_texts")
    if preset.uses_question and questions is None:
        raise ValueError(f"prompt preset {preset.id!r} needs questions")
    return [
        preset.render(alt_texts[i] if alt_texts is not None else None, questions[i] if questions is not None else None)
        for i in range(count)
    ]


def finish_reason_from(stopped: bool) -> str:
    return FINISH_STOP if stopped else FINISH_LENGTH

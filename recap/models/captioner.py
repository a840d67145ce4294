"""One captioner interface over two backends (transformers everywhere, vLLM on GPUs): the backend registry.

    captioner = load_captioner(CaptionerConfig(model="/models/llava-llama-3-8b", backend="vllm"))
    results = captioner.caption(images, alt_texts=None)   # -> [CaptionResult(text, output_tokens, finish_reason)]

The config, result and prompt helpers live in `recap.models.captioning` (re-exported here); backends import
that leaf, never this module.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import asdict
from pathlib import Path

from recap.models.captioning import (
    BACKENDS,
    Captioner,
    CaptionerConfig,
    CaptionResult,
    instructions,
    render_prompt,
)

__all__ = ["BACKENDS", "Captioner", "CaptionerConfig", "CaptionResult", "describe", "instructions", "load_captioner"]
__all__ += ["model_fingerprint", "render_prompt"]

# backend name -> (module, class). Modules are imported on use: vLLM is an optional extra, and importing torch
# or transformers costs seconds that a driver does not need to spend.
BACKEND_CLASSES = {
    "transformers": ("recap.models.transformers_backend", "TransformersCaptioner"),
    "vllm": ("recap.models.vllm_backend", "VllmCaptioner"),
}
assert set(BACKEND_CLASSES) == set(BACKENDS)


def model_fingerprint(path: str) -> str | None:
    """A cheap content id of a local checkpoint folder (config files and weight sizes), for provenance."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        if file.is_file():
            digest.update(file.name.encode())
            if file.suffix in (".json", ".jinja"):
                digest.update(file.read_bytes())
            else:
                digest.update(str(file.stat().st_size).encode())
    return digest.hexdigest()[:16]


def load_captioner(config: CaptionerConfig) -> Captioner:
    """Build the backend `config.backend` names; the vLLM backend needs `pip install 'recap[vllm]'`."""
    module, name = BACKEND_CLASSES[config.backend]
    return getattr(importlib.import_module(module), name)(config)


def describe(config: CaptionerConfig) -> dict:
    """Everything about a captioner that belongs in a run manifest."""
    preset = config.preset
    return {
        "model": config.model,
        "model_fingerprint": model_fingerprint(config.model),
        "backend": config.backend,
        "revision": config.revision,
        "prompt_id": preset.id,
        "prompt_text": preset.text,
        "generation": config.generation_parameters(),
        "config": asdict(config),
    }

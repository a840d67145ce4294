"""The denoiser presets `recap train-t2i --model` takes: PixArt DiT sizes and LEGO brick stacks.

Plain dicts, importable without torch or diffusers (the CLI lists them in --help); `recap.models.t2i.new_denoiser`
builds either kind.
"""

from __future__ import annotations

# Denoiser sizes (PixArtTransformer2DModel arguments; caption_channels comes from the text tower). The tiny one
# trains at ~2 steps/s at batch 32 on 2 CPU cores (4M parameters, 64 tokens of 4x4 pixels); the second is the
# paper's DiT-B/4 on 256 px images through an 8x VAE (32x32x4 latents).
DIT_PRESETS: dict[str, dict] = {
    "recap-dit-tiny": {
        "patch_size": 4,
        "num_layers": 6,
        "num_attention_heads": 6,
        "attention_head_dim": 32,
    },
    "recap-dit-tiny-8": {  # the tiny one on 8x8 patches: 16 tokens at 32 px
        "patch_size": 8,
        "num_layers": 6,
        "num_attention_heads": 6,
        "attention_head_dim": 32,
    },
    "recap-dit-mini": {
        "patch_size": 4,
        "num_layers": 4,
        "num_attention_heads": 4,
        "attention_head_dim": 32,
    },
    "dit-b-4": {
        "patch_size": 4,
        "num_layers": 12,
        "num_attention_heads": 12,
        "attention_head_dim": 64,
    },
}

# Brick stacks for the world's 32 px, at recap-dit-tiny-8's width (6 heads x 32 dims) and depth (6 layers in all, the
# most on the global brick, as the authors' S-PG-64 depths 2/4/6 grow with the window). Tokens per window: 4 (8-px
# windows of 4-px patches), 4 (16-px windows of 8-px patches), 16 (the 32-px window of 8-px patches); per image 64, 16
# and 16. Against recap-dit-tiny-8 (4.0M parameters, 15.8 GFLOP per forward + backward at batch 32 with 64 text
# tokens): 4.97M and 22.9 GFLOP (1.45x), ~1.6x its time per step on one CPU thread; brick 0's 64 tokens per image
# are most of the difference (depths 1/1/3 would save only ~10%).
_WIDTH = {"num_attention_heads": 6, "attention_head_dim": 32}
LEGO_PRESETS: dict[str, dict] = {
    "lego-pg": {  # progressive growth: local bricks first, the global one on top
        "bricks": [
            {"window": 8, "patch_size": 4, "num_layers": 1, **_WIDTH},
            {"window": 16, "patch_size": 8, "num_layers": 2, **_WIDTH},
            {"window": 32, "patch_size": 8, "num_layers": 3, **_WIDTH},
        ],
    },
    "lego-pr": {  # progressive refinement: the global brick first, local ones on top
        "bricks": [
            {"window": 32, "patch_size": 8, "num_layers": 3, **_WIDTH},
            {"window": 16, "patch_size": 8, "num_layers": 2, **_WIDTH},
            {"window": 8, "patch_size": 4, "num_layers": 1, **_WIDTH},
        ],
    },
}


def denoiser_presets() -> list[str]:
    """Every preset name, the DiT sizes first."""
    return sorted(DIT_PRESETS) + sorted(LEGO_PRESETS)


def is_lego(preset_name: str) -> bool:
    """Whether `preset_name` names a LEGO stack (rather than a `DIT_PRESETS` size)."""
    return preset_name in LEGO_PRESETS

"""Contrastive pretraining of the tiny vision tower: a tiny CLIP standing in for OpenAI's CLIP ViT-L/14.

The real LLaVA starts from a CLIP tower trained on 400M web pairs. The embedded world has none, so we train
a tiny CLIP (HF `CLIPModel`, the LLaVA tower's exact vision config and a small text tower on the project's
tokenizer) on the training split's captions, then copy its vision weights into the LLaVA tower.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def build_clip(llava_config, tokenizer, text_hidden: int = 128, text_layers: int = 2):
    """A CLIPModel whose vision tower has the LLaVA tower's config."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

    vision = llava_config.vision_config.to_dict()
    text = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_hidden,
        intermediate_size=text_hidden * 4,
        num_hidden_layers=text_layers,
        num_attention_heads=4,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision, projection_dim=vision["hidden_size"])
    return CLIPModel(config)


def _features(output) -> torch.Tensor:
    # transformers 5 returns a model output whose pooler_output holds the projected features.
    features = output if isinstance(output, torch.Tensor) else output.pooler_output
    return F.normalize(features, dim=-1)


def contrastive_loss(clip, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Symmetric InfoNCE over the batch (CLIP's loss)."""
    image = _features(clip.get_image_features(pixel_values=pixel_values))
    text = _features(clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
    logits = clip.logit_scale.exp().clamp(max=100) * image @ text.T
    labels = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def copy_vision_weights(clip, llava) -> None:
    """Load the CLIP vision transformer's weights into the LLaVA vision tower (same module layout)."""
    tower = llava.model.vision_tower
    tower = getattr(tower, "vision_model", tower)  # transformers 5 keeps the transformer itself as the tower
    tower.load_state_dict(clip.vision_model.state_dict())

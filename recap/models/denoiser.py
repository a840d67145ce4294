"""The denoiser's two conventions, in one leaf module: how diffusers' PixArt DiT is configured (the Recap-DiT of
`recap.models.t2i` and every LEGO brick of `recap.models.lego` are built by `new_pixart`, so the two cannot drift
apart) and how a denoiser is called (`denoise`: PixArt and `LegoDenoiser` take the same arguments)."""

from __future__ import annotations


def new_pixart(size: dict, *, sample_size: int, in_channels: int, out_channels: int, caption_channels: int):
    """A randomly initialised `PixArtTransformer2DModel`: adaLN-single timestep conditioning without PixArt's
    resolution / aspect-ratio inputs, cross-attention to `caption_channels`-wide text tokens, no learned variance.
    `size` holds patch_size, num_layers, num_attention_heads and attention_head_dim (other keys are ignored)."""
    from diffusers import PixArtTransformer2DModel

    return PixArtTransformer2DModel(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=out_channels,
        cross_attention_dim=size["num_attention_heads"] * size["attention_head_dim"],
        caption_channels=caption_channels,
        norm_type="ada_norm_single",
        num_embeds_ada_norm=1000,
        use_additional_conditions=False,
        norm_num_groups=1,
        patch_size=size["patch_size"],
        num_layers=size["num_layers"],
        num_attention_heads=size["num_attention_heads"],
        attention_head_dim=size["attention_head_dim"],
    )


def denoise(transformer, x, timesteps, features, mask, **options):
    """One denoiser call: its prediction (clean image, noise or velocity; beta diffusion's residual logit) for `x`
    at `timesteps` given text features and mask. `options` go to the model (a LEGO stack's `upto`)."""
    return transformer(
        x,
        encoder_hidden_states=features,
        encoder_attention_mask=mask,
        timestep=timesteps,
        added_cond_kwargs={"resolution": None, "aspect_ratio": None},
        **options,
    ).sample


def denoiser_outputs(transformer, x, timesteps, features, mask) -> list:
    """What training supervises: every brick's output of a LEGO stack (deep supervision), else the one output."""
    if getattr(transformer, "num_bricks", None):
        return transformer(
            x, encoder_hidden_states=features, encoder_attention_mask=mask, timestep=timesteps, return_all=True
        )
    return [denoise(transformer, x, timesteps, features, mask)]

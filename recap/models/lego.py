"""LEGO bricks (Zheng et al. 2024, "Learning Stackable and Skippable LEGO Bricks for Efficient, Reconfigurable, and
Variable-Resolution Diffusion Modeling"; JegZheng/LEGODiffusion, training/lego_models.py, training/loss.py,
generate.py) as a text-conditioned denoiser: a drop-in alternative to the Recap-DiT's PixArt transformer.

    model = new_lego("lego-pg", sample_size=32, channels=3, caption_channels=128)
    prediction = denoise(model, x_t, timesteps, features, mask)        # recap.models.t2i.denoise, unchanged
    outputs = model(x_t, features, mask, timesteps, return_all=True)   # every brick's output, for deep supervision
    skipped = model(x_t, features, mask, timesteps, upto=skip_brick_index(model.num_bricks)).sample

A brick is a small DiT (diffusers' `PixArtTransformer2DModel`: patch embedding with sin-cos positions, adaLN-single
timestep conditioning, cross-attention to the text tokens, final layer) run on every non-overlapping r x r window
of the canvas. Brick k reads cat(brick k-1's output, x_t, coords), brick 0 cat(x_t, coords), where coords are two
channels in [-1, 1] over the whole canvas (horizontal, then vertical), so a window knows where it is; each brick
outputs the prediction (the training target: x0, v or eps) for the whole canvas. Every window of an image reads the
same condition (timestep and text tokens). A canvas larger than the training size tiles more windows: a brick's
position embedding only ever sees r x r windows, and coords are recomputed for the canvas given.

The model is a diffusers `ModelMixin`: `save_pretrained` writes a `transformer/`-style folder (config.json with
`_class_name` "LegoDenoiser" and the bricks, and the weights) that `LegoDenoiser.from_pretrained` reads back.

Where this differs from the authors' code, and why:
- Text instead of class labels, and the project's DDPM schedule and prediction targets instead of EDM
  preconditioning: a brick's raw output is the prediction, as the PixArt denoiser's is. (The authors pass each
  brick's raw network output F_x on to the next brick too, before c_skip x + c_out F_x is applied.)
- Each brick is a whole PixArt model with its own timestep embedding (adaLN-single) and caption projection; the
  authors share one timestep + label embedder across the bricks. A self-contained brick may differ in width from
  the others, and a skipped brick skips its condition encoders too; it costs ~0.37M parameters per brick at width
  192.
- Every window of an image reads the same text, and a cross-attention query attends on its own, so the cross-
  attention takes an image's windows as one sequence against the text tokens once: the same result as repeating the
  text per window (a test checks it against the PixArt forward on repeated text), without computing the text's
  keys and values once per window (16x at 8-px windows on 32 px, which would cost more than the image tokens).
- Coordinates: the authors' x_grid varies down the rows and their y_grid across the columns (meshgrid with
  indexing='xy' on (arange(H), arange(W))), and only square canvases work; here channel 0 is the horizontal
  coordinate, channel 1 the vertical one, and any canvas whose sides are multiples of every window works.
- Skipping: their sampler sets `return_stage_idx = num_bricks - 1` to "skip the last brick", which is the last
  brick, so nothing is skipped (and their guided forward drops the stage index); `skip_brick_index` is K - 2, the
  output of the brick below the top one, to be passed as `upto` on every guidance branch.
- `deep_supervision_loss` is the mean of the per-brick MSEs, the authors' default (loss.py averages the weighted
  squared errors over bricks), without the EDM weight: the project's trainer uses plain MSE on its target.
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin, PixArtTransformer2DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput

from recap.errors import RecapError
from recap.models.denoiser import new_pixart
from recap.models.denoiser_presets import LEGO_PRESETS

COORDINATE_CHANNELS = 2
BRICK_KEYS = ("window", "patch_size", "num_layers", "num_attention_heads", "attention_head_dim")


def skip_brick_index(num_bricks: int) -> int:
    """The brick whose output stands in for the whole stack when the top brick is skipped: K - 2 (at least 0)."""
    return max(num_bricks - 2, 0)


def deep_supervision_loss(outputs: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """The mean over bricks of each brick's MSE against `target` (every output has the target's shape)."""
    if not outputs:
        raise ValueError("deep_supervision_loss needs at least one brick output")
    return torch.stack([torch.nn.functional.mse_loss(output, target) for output in outputs]).mean()


def _check_multiple(height: int, width: int, window: int) -> None:
    if height % window or width % window:
        raise RecapError(f"a {height}x{width} canvas is not a whole number of {window}x{window} windows")


def unfold_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(N, C, H, W) -> (N * H/r * W/r, C, r, r): the non-overlapping r x r windows, image by image, each image's in
    row-major order. RecapError if a side is not a multiple of r."""
    n, channels, height, width = x.shape
    _check_multiple(height, width, window)
    rows, columns = height // window, width // window
    x = x.reshape(n, channels, rows, window, columns, window).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(n * rows * columns, channels, window, window)


def fold_windows(windows: torch.Tensor, window: int, n: int, height: int, width: int) -> torch.Tensor:
    """The inverse of `unfold_windows`: (N * H/r * W/r, C, r, r) -> (N, C, H, W)."""
    _check_multiple(height, width, window)
    rows, columns = height // window, width // window
    if windows.shape[0] != n * rows * columns or tuple(windows.shape[2:]) != (window, window):
        expected = f"the {n * rows * columns} {window}x{window} windows of {n} {height}x{width}"
        raise ValueError(f"{tuple(windows.shape)} are not {expected}")
    channels = windows.shape[1]
    x = windows.reshape(n, rows, columns, channels, window, window).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(n, channels, height, width)


def canvas_coordinates(n: int, height: int, width: int, *, dtype=None, device=None) -> torch.Tensor:
    """(N, 2, H, W): the horizontal then the vertical pixel coordinate, each from -1 to 1 across the canvas."""
    horizontal = torch.linspace(-1.0, 1.0, width, dtype=dtype, device=device).expand(height, width)
    vertical = torch.linspace(-1.0, 1.0, height, dtype=dtype, device=device)[:, None].expand(height, width)
    return torch.stack([horizontal, vertical]).expand(n, COORDINATE_CHANNELS, height, width)


def _new_brick(brick: dict, in_channels: int, out_channels: int, caption_channels: int) -> PixArtTransformer2DModel:
    return new_pixart(
        brick,
        sample_size=brick["window"],
        in_channels=in_channels,
        out_channels=out_channels,
        caption_channels=caption_channels,
    )


def _block_forward(block, tokens, windows: int, text, text_bias, modulation):
    """diffusers' BasicTransformerBlock.forward for norm_type "ada_norm_single" (PixArt), on (N, windows * T, D)
    tokens: self-attention within each window, cross-attention of all of an image's windows against its text at once
    (per query, the same as per window), adaLN modulation per image."""
    n, length, width = tokens.shape
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
        block.scale_shift_table[None] + modulation.reshape(n, 6, -1)
    ).chunk(6, dim=1)
    hidden = block.norm1(tokens) * (1 + scale_msa) + shift_msa
    hidden = block.attn1(hidden.reshape(n * windows, length // windows, width)).reshape(n, length, width)
    tokens = tokens + gate_msa * hidden
    # PixArt applies no norm before its cross-attention (diffusers' comment in BasicTransformerBlock says so).
    tokens = tokens + block.attn2(tokens, encoder_hidden_states=text, attention_mask=text_bias)
    hidden = block.norm2(tokens) * (1 + scale_mlp) + shift_mlp
    return tokens + gate_mlp * block.ff(hidden)


def brick_forward(brick: PixArtTransformer2DModel, x, window: int, text, text_bias, timestep) -> torch.Tensor:
    """One brick on every `window` x `window` window of `x` (N, C_in, H, W) -> (N, C_out, H, W). `text` (N, L,
    caption_channels), `text_bias` (N, 1, L) additive or None, `timestep` (N,). Computes what PixArt's own forward
    gives on the windows with the condition repeated per window (tests check it), with the text work done once per
    image."""
    n, _, height, width = x.shape
    patch = brick.config.patch_size
    windows = (height // window) * (width // window)
    tokens = brick.pos_embed(unfold_windows(x, window))  # (N * windows, T, D); positions of an r x r window
    tokens = tokens.reshape(n, -1, tokens.shape[-1])
    modulation, embedded_timestep = brick.adaln_single(
        timestep, {"resolution": None, "aspect_ratio": None}, batch_size=n, hidden_dtype=tokens.dtype
    )
    text = brick.caption_projection(text)
    for block in brick.transformer_blocks:
        tokens = _block_forward(block, tokens, windows, text, text_bias, modulation)
    shift, scale = (brick.scale_shift_table[None] + embedded_timestep[:, None]).chunk(2, dim=1)
    tokens = brick.proj_out(brick.norm_out(tokens) * (1 + scale) + shift)  # (N, windows * T, p * p * C_out)
    side = window // patch
    tokens = tokens.reshape(n * windows, side, side, patch, patch, brick.out_channels)
    patches = torch.einsum("nhwpqc->nchpwq", tokens).reshape(n * windows, brick.out_channels, window, window)
    return fold_windows(patches, window, n, height, width)


class LegoDenoiser(ModelMixin, ConfigMixin):
    """A stack of LEGO bricks (see the module docstring). `bricks` lists each brick's window, patch_size,
    num_layers, num_attention_heads and attention_head_dim, bottom first; `sample_size` is the training canvas side,
    a multiple of every window. `forward` takes the PixArt denoiser's arguments and returns its output type."""

    @register_to_config
    def __init__(self, bricks: list[dict], in_channels: int = 3, caption_channels: int = 128, sample_size: int = 32):
        super().__init__()
        if not bricks:
            raise RecapError("a LEGO stack needs at least one brick")
        for index, brick in enumerate(bricks):
            missing = [key for key in BRICK_KEYS if key not in brick]
            if missing:
                raise RecapError(f"LEGO brick {index} has no {', '.join(missing)}")
            if brick["window"] % brick["patch_size"]:
                raise RecapError(
                    f"LEGO brick {index}: a {brick['window']}-pixel window is not a whole number of "
                    f"{brick['patch_size']}-patches"
                )
            if sample_size % brick["window"]:
                raise RecapError(
                    f"LEGO brick {index}: a {sample_size}-pixel sample is not a whole number of "
                    f"{brick['window']}-pixel windows"
                )
        # Brick 0 reads (x_t, coords), as the authors' first brick (in_channels + 2); the others also read the
        # previous brick's output in front (the authors' cat([F_x, x]), 2 * in_channels + 2).
        # Not `self.bricks`: that name is the config's list (diffusers' ModelMixin would hand it out instead).
        self.brick_networks = torch.nn.ModuleList(
            _new_brick(
                brick,
                (in_channels if index else 0) + in_channels + COORDINATE_CHANNELS,
                in_channels,
                caption_channels,
            )
            for index, brick in enumerate(bricks)
        )
        self.windows = [int(brick["window"]) for brick in bricks]

    @property
    def num_bricks(self) -> int:
        return len(self.brick_networks)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
        added_cond_kwargs: dict | None = None,
        *,
        upto: int | None = None,
        return_all: bool = False,
    ):
        """`hidden_states` x_t (N, C, H, W), H and W multiples of every window; `encoder_hidden_states` text tokens
        (N, L, caption_channels) with `encoder_attention_mask` (N, L) (1/True = keep) or None; `timestep` (N,) or a
        scalar. `added_cond_kwargs` is accepted for PixArt compatibility and ignored (no additional conditions).
        Returns a `Transformer2DModelOutput` whose `.sample` (N, C, H, W) is the top brick's output, or brick `upto`'s
        with the bricks above it skipped; `return_all`: the list of every brick's output run (each (N, C, H, W))."""
        if encoder_hidden_states is None or timestep is None:
            raise ValueError("a LEGO denoiser needs encoder_hidden_states (text tokens) and timestep")
        last = self.num_bricks - 1 if upto is None else upto
        if not 0 <= last < self.num_bricks:
            raise ValueError(f"upto={upto} is not a brick index of this {self.num_bricks}-brick stack")
        n, _, height, width = hidden_states.shape
        for window in self.windows:
            _check_multiple(height, width, window)
        timestep = torch.as_tensor(timestep, device=hidden_states.device)
        if timestep.ndim == 0:
            timestep = timestep.expand(n)
        text_bias = None
        if encoder_attention_mask is not None and encoder_attention_mask.ndim == 2:  # PixArt's mask -> bias
            text_bias = ((1 - encoder_attention_mask.to(hidden_states.dtype)) * -10000.0).unsqueeze(1)
        elif encoder_attention_mask is not None:
            text_bias = encoder_attention_mask
        coordinates = canvas_coordinates(n, height, width, dtype=hidden_states.dtype, device=hidden_states.device)
        condition = torch.cat([hidden_states, coordinates], dim=1)
        outputs, previous = [], None
        for index in range(last + 1):
            inputs = condition if previous is None else torch.cat([previous, condition], dim=1)
            previous = brick_forward(
                self.brick_networks[index], inputs, self.windows[index], encoder_hidden_states, text_bias, timestep
            )
            outputs.append(previous)
        if return_all:
            return outputs
        return Transformer2DModelOutput(sample=previous)


def new_lego(preset: str, *, sample_size: int, channels: int, caption_channels: int, seed: int = 0) -> LegoDenoiser:
    """A randomly initialised `LegoDenoiser` of a `LEGO_PRESETS` stack; RecapError for an unknown preset or a sample
    size that is not a multiple of every brick's window."""
    if preset not in LEGO_PRESETS:
        raise RecapError(f"unknown LEGO preset {preset!r}; choose one of {', '.join(LEGO_PRESETS)}")
    bricks = [dict(brick) for brick in LEGO_PRESETS[preset]["bricks"]]
    for brick in bricks:
        if sample_size % brick["window"]:
            windows = ", ".join(str(brick["window"]) for brick in bricks)
            raise RecapError(
                f"{preset}: a {sample_size}-pixel sample is not a whole number of each window ({windows})"
            )
    torch.manual_seed(seed)
    return LegoDenoiser(
        bricks=bricks, in_channels=channels, caption_channels=caption_channels, sample_size=sample_size
    )

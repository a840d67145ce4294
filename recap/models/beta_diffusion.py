"""Beta diffusion (Zhou, Chen, Wang and Zheng, "Beta Diffusion", NeurIPS 2023; mingyuanzhou/Beta-Diffusion).

Pixels are mapped from [-1, 1] to [SHIFT, SHIFT + SCALE] = [0.60, 0.99] and diffused multiplicatively:

    z_t ~ Beta(eta a_t x0, eta (1 - a_t x0)),    logit a_t = 10 - 23 t,  t in [1e-5, 1],  eta = 1e4.

The network sees logit z_t whitened by its mean and std over x0 uniform on the range, outputs a residual on that
input read as the logit of x0, and is trained with KLUB, 0.99 KL of the reverse conditionals plus 0.01 KL of the
marginals, the model's distribution in the first argument. The sampler walks a geometric grid of a from
sigmoid(-13) to 1 with z <- z + (1 - z) p, p ~ Beta(eta (a_next - a_cur) x0_hat, eta (1 - a_next x0_hat)).

The authors' code is the reference: `image_experiment/training/loss.py` (`BetaDiffLoss`: time draw, forward
sample, whitening, `compute_loss`, `KL_gamma`), `training/networks.py` (`BetaDiffPrecond`: the residual output)
and `generate.py` (`bd_sampler`: grid, start, update; `main`: the mean image). Where this code differs, and why:

- Gamma draws. The authors take log(Gamma(a)) of float32 draws, clamped at float32's tiny in training: at t = 1
  (shapes 0.014-0.022) the clamp catches 14-30% of the pixels and shifts z_t upwards; in their sampler the log is
  -inf (p = 0). Here log G_a = log G_{a+1} + log(U) / a (exact in law, the usual small-shape boost), in float64,
  so logit z = log G1 - log G2 is finite and unbiased for any shape and z_t never rounds to 0 or 1.
- Whitening std. Theirs is E[trigamma(A) + trigamma(B)] + Var[digamma(A)] + Var[digamma(B)] (A = eta a x0,
  B = eta (1 - a x0), x0 uniform): it drops -2 Cov(digamma(A), digamma(B)), which is positive because digamma(A)
  rises and digamma(B) falls with x0, so their std is up to ~1.4x too small at mid t. Here the law of total
  variance in full: E[trigamma(A) + trigamma(B)] + Var[digamma(A) - digamma(B)] (trapezoid rule over x0, as they
  integrate). The mean is their closed form through lgamma. Both in float64 at every t (theirs is float32 in
  training, where at t = 1 its lgamma difference gives E[digamma(B)] = 9.75 for 9.21).
- The loss is computed in float64 (theirs float32): its KLs are differences of lgamma values up to ~10^5, which
  float32 holds to ~1e-2 each (at t >= 0.8 and errors of 0.001-0.01, 10-40% of the loss). a_s - a_t is
  sinh((l_s - l_t) / 2) / (2 cosh(l_s / 2) cosh(l_t / 2)) (l = logit a), exact where a_s and a_t agree to 10
  digits at t = 1e-5; 1 - a x0 is sigmoid(-l) + a (1 - x0).
  Their clamps at 0 of each gamma KL are not copied: they only guarded float32 rounding and cut the gradient.
- The loss is a mean over pixels by default (`per_pixel=True`), theirs a sum; both are averaged over the batch.
  See `klub_loss`.
- The sampler is seeded per image (`seed + i`, as `recap.models.t2i.generate` promises); theirs uses the global
  RNG. Its draws are made on the CPU, so they do not depend on the device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from recap.models.guidance import cfg

SHIFT = 0.60
SCALE = 0.39
ETA = 1e4
LOGIT_ALPHA_START = 10.0  # logit a at t = 0 (their sigmoid_start)
LOGIT_ALPHA_END = -13.0  # logit a at t = 1 (their sigmoid_end; sigmoid_power = 1)
EPSILON_T = 1e-5  # the smallest training t
QUADRATURE_POINTS = 201  # trapezoid nodes over x0 for the whitening variance (theirs: 101)

Generators = torch.Generator | Sequence[torch.Generator] | None


# --- schedule and ranges ----------------------------------------------------------------------------------------


def logit_alpha(t):
    """logit a_t = 10 - 23 t."""
    return LOGIT_ALPHA_START + (LOGIT_ALPHA_END - LOGIT_ALPHA_START) * t


def time_of_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """The t with a_t = `alpha` (the inverse of sigmoid(logit_alpha(t))): the network's time input while sampling."""
    alpha = torch.as_tensor(alpha, dtype=torch.float64)
    return (LOGIT_ALPHA_START - torch.logit(alpha)) / (LOGIT_ALPHA_START - LOGIT_ALPHA_END)


def training_times(count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`count` training times uniform on [EPSILON_T, 1] (theirs: 1 + u (epsilon_t - 1))."""
    return 1 + torch.rand(count, generator=generator) * (EPSILON_T - 1)


def network_timestep(t: torch.Tensor, num_train_timesteps: int = 1000) -> torch.Tensor:
    """t in [0, 1] as a DDPM-style timestep in [0, num_train_timesteps - 1] (float) for the DiT's embedding.

    Theirs feeds -logit(a_t) / 8 to the UNet's embedding; any affine map of t carries the same information."""
    return t * (num_train_timesteps - 1)


def to_beta_range(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [SHIFT, SHIFT + SCALE], clamped as the authors do."""
    return ((images + 1) / 2).clamp(0, 1) * SCALE + SHIFT


def from_beta_range(x: torch.Tensor) -> torch.Tensor:
    """[SHIFT, SHIFT + SCALE] -> [-1, 1]."""
    return (x - SHIFT) / SCALE * 2 - 1


def _per_sample(t, like: torch.Tensor) -> torch.Tensor:
    """t (a number, or one per row of `like`) in float64, shaped to broadcast against `like`."""
    t = torch.as_tensor(t, dtype=torch.float64, device=like.device)
    return t if t.dim() == 0 else t.reshape(-1, *([1] * (like.dim() - 1)))


def _one_minus_alpha_x(logit_a: torch.Tensor, alpha: torch.Tensor, x) -> torch.Tensor:
    """1 - a x without the cancellation of a -> 1, x -> 1."""
    return torch.sigmoid(-logit_a) + alpha * (1 - x)


# --- beta draws in logit space ----------------------------------------------------------------------------------


def _log_standard_gamma(concentration: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """log of a Gamma(concentration, 1) draw in float64, finite for any shape > 0 (G_a = G_{a+1} U^(1/a))."""
    device = generator.device if generator is not None else concentration.device
    shape = concentration.to(device, torch.float64)
    boosted = torch._standard_gamma(shape + 1, generator=generator)  # the only gamma sampler that takes a generator
    uniform = torch.rand(shape.shape, generator=generator, dtype=torch.float64, device=device)  # [0, 1)
    log_gamma = boosted.clamp_min(torch.finfo(torch.float64).tiny).log() + torch.log1p(-uniform) / shape
    return log_gamma.to(concentration.device)


def sample_logit_beta(concentration1: torch.Tensor, concentration0: torch.Tensor, generator: Generators):
    """logit of a Beta(concentration1, concentration0) draw, log G1 - log G2, in float64.

    `generator`: one for the whole tensor, or one per row (row i's draws from generator i only, so a row's
    values do not depend on the rows beside it)."""
    concentration1, concentration0 = torch.broadcast_tensors(concentration1, concentration0)
    if generator is None or isinstance(generator, torch.Generator):
        return _log_standard_gamma(concentration1, generator) - _log_standard_gamma(concentration0, generator)
    generators = list(generator)
    if len(generators) != len(concentration1):
        raise ValueError(f"{len(generators)} generators for {len(concentration1)} rows")
    return torch.stack(
        [
            _log_standard_gamma(row1, rng) - _log_standard_gamma(row0, rng)
            for row1, row0, rng in zip(concentration1, concentration0, generators, strict=True)
        ]
    )


def forward_sample(x0: torch.Tensor, t, generator: Generators, *, eta: float = ETA) -> torch.Tensor:
    """logit z_t for z_t ~ Beta(eta a_t x0, eta (1 - a_t x0)), in x0's dtype (z_t itself would round to 0 or 1).

    `x0` (N, ...) is in the beta range; `t` a number or one per row. Follows `BetaDiffLoss.__call__`."""
    logit_a = logit_alpha(_per_sample(t, x0))
    alpha, x = torch.sigmoid(logit_a), x0.to(torch.float64)
    return sample_logit_beta(eta * alpha * x, eta * _one_minus_alpha_x(logit_a, alpha, x), generator).to(x0.dtype)


# --- network input and output -----------------------------------------------------------------------------------


def logit_moments(t, *, eta: float = ETA, points: int = QUADRATURE_POINTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of logit z_t when x0 is uniform on [SHIFT, SHIFT + SCALE], float64, of t's shape.

    For Beta(A, B), E logit z = digamma(A) - digamma(B) and Var = trigamma(A) + trigamma(B). Averaged over x0
    (A = eta a x0, B = eta (1 - a x0), both linear in x0 with slope +-eta a): the means of digamma and trigamma
    are lgamma and digamma differences over eta a SCALE (their closed form); the spread of the conditional mean,
    Var[digamma(A) - digamma(B)], is a trapezoid rule on `points` nodes."""
    t = torch.as_tensor(t, dtype=torch.float64)
    logit_a = logit_alpha(t)
    alpha = torch.sigmoid(logit_a)
    low, high = SHIFT, SHIFT + SCALE
    span = eta * alpha * SCALE
    first_low, first_high = eta * alpha * low, eta * alpha * high
    second_low = eta * _one_minus_alpha_x(logit_a, alpha, low)
    second_high = eta * _one_minus_alpha_x(logit_a, alpha, high)
    mean = torch.lgamma(first_high) - torch.lgamma(first_low) - torch.lgamma(second_low) + torch.lgamma(second_high)
    mean = mean / span
    within = (
        torch.digamma(first_high) - torch.digamma(first_low) + torch.digamma(second_low) - torch.digamma(second_high)
    ) / span
    grid = torch.linspace(low, high, points, dtype=torch.float64, device=t.device)
    alpha_x, logit_x = alpha.unsqueeze(-1), logit_a.unsqueeze(-1)
    conditional_mean = torch.digamma(eta * alpha_x * grid) - torch.digamma(
        eta * _one_minus_alpha_x(logit_x, alpha_x, grid)
    )
    weights = torch.full((points,), 1.0 / (points - 1), dtype=torch.float64, device=t.device)
    weights[0] = weights[-1] = 0.5 / (points - 1)
    centre = (conditional_mean * weights).sum(-1, keepdim=True)
    between = ((conditional_mean - centre) ** 2 * weights).sum(-1)
    return mean, (within + between).sqrt()


def whiten_logit(logit_z: torch.Tensor, t, *, eta: float = ETA) -> torch.Tensor:
    """The network input (logit z_t - E) / std (`logit_moments`), in logit_z's dtype; `t` a number or one per row."""
    mean, std = logit_moments(torch.as_tensor(t, dtype=torch.float64, device=logit_z.device), eta=eta)
    mean, std = _per_sample(mean, logit_z), _per_sample(std, logit_z)
    return ((logit_z.to(torch.float64) - mean) / std).to(logit_z.dtype)


def predicted_logit_x0(output: torch.Tensor, network_input: torch.Tensor) -> torch.Tensor:
    """The logit of x0's position in the range: the network's input plus its output (`BetaDiffPrecond.forward`,
    D_x = x + F_x with c_skip = c_out = 1: the network learns a residual on the whitened logit z_t)."""
    return network_input + output


def x0_from_logit(logit_x0: torch.Tensor) -> torch.Tensor:
    """x0_hat = sigmoid(logit) * SCALE + SHIFT, inside the beta range."""
    return torch.sigmoid(logit_x0) * SCALE + SHIFT


def predicted_x0(output: torch.Tensor, network_input: torch.Tensor) -> torch.Tensor:
    """x0_hat from the network's output and its (whitened) input."""
    return x0_from_logit(predicted_logit_x0(output, network_input))


def guided_logit_x0(uncond_logit: torch.Tensor, cond_logit: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance in logit-x0 space: uncond + scale (cond - uncond), then `x0_from_logit`.

    The authors' code has no guidance. Guiding the logit keeps x0_hat inside the range at any scale; both branches
    share the residual's input, so this equals guiding the raw outputs."""
    return cfg(uncond_logit, cond_logit, scale)


# --- loss -------------------------------------------------------------------------------------------------------


def kl_gamma(shape1: torch.Tensor, shape2: torch.Tensor) -> torch.Tensor:
    """KL(Gamma(shape1, 1) || Gamma(shape2, 1)) = (a - b) digamma(a) - lgamma(a) + lgamma(b) (`KL_gamma`)."""
    return (shape1 - shape2) * torch.digamma(shape1) - torch.lgamma(shape1) + torch.lgamma(shape2)


def kl_beta(a1: torch.Tensor, b1: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """KL(Beta(a1, b1) || Beta(a2, b2)) through the gamma decomposition, in the inputs' dtype (`KL_beta`)."""
    return kl_gamma(a1, a2) + kl_gamma(b1, b2) - kl_gamma(a1 + b1, a2 + b2)


def klub_loss(
    x0_hat: torch.Tensor,
    x0: torch.Tensor,
    t,
    *,
    objective: str = "klub",
    s_ratio: float = 0.95,
    eta: float = ETA,
    weights: tuple[float, float] = (0.99, 0.01),
    per_pixel: bool = True,
) -> torch.Tensor:
    """KLUB (or -ELBO) of predictions `x0_hat` against data `x0` (both (N, ...) in the beta range) at times `t`.

    weights[0] KL(Beta(eta d x0_hat, eta (1 - a_s x0_hat)) || Beta(eta d x0, eta (1 - a_s x0))), d = a_s - a_t,
    s = s_ratio t, plus weights[1] KL(Beta(eta a_t x0_hat, eta (1 - a_t x0_hat)) || Beta(eta a_t x0, ...)): the
    model first ("klub", their 'KLUB'), or second ("elbo", their 'ELBO' = 'KLUB_AS'). Computed in float64,
    returned in x0_hat's dtype; zero, with zero gradient, where x0_hat == x0.

    Reduction: the batch mean of each image's mean over its values (`per_pixel=True`), or of its sum (False, the
    authors' `loss.sum() / batch`: 3072x larger on 32x32x3 images). Adam is blind to a constant factor, but the
    project's AdamW recipe (lr 1e-3) clips the gradient norm at 1.0 and mixes the loss with per-value means (the
    MSE, CBDM's term): the sum would keep the clip always on and drown those terms, so the mean is the default."""
    if objective not in ("klub", "elbo"):
        raise ValueError(f"objective must be 'klub' or 'elbo', got {objective!r}")
    if x0_hat.shape != x0.shape:
        raise ValueError(f"x0_hat and x0 differ in shape: {tuple(x0_hat.shape)} and {tuple(x0.shape)}")
    time = _per_sample(t, x0)
    logit_t, logit_s = logit_alpha(time), logit_alpha(s_ratio * time)
    alpha_t, alpha_s = torch.sigmoid(logit_t), torch.sigmoid(logit_s)
    half_gap = (LOGIT_ALPHA_START - LOGIT_ALPHA_END) * (1 - s_ratio) * time / 2  # (logit a_s - logit a_t) / 2
    delta = torch.sinh(half_gap) / (2 * torch.cosh(logit_s / 2) * torch.cosh(logit_t / 2))

    def conditional(x):
        return eta * delta * x, eta * _one_minus_alpha_x(logit_s, alpha_s, x)

    def marginal(x):
        return eta * alpha_t * x, eta * _one_minus_alpha_x(logit_t, alpha_t, x)

    model, data = x0_hat.to(torch.float64), x0.to(torch.float64)
    first, second = (model, data) if objective == "klub" else (data, model)
    kl = weights[0] * kl_beta(*conditional(first), *conditional(second))
    kl = kl + weights[1] * kl_beta(*marginal(first), *marginal(second))
    per_image = kl.flatten(1).mean(1) if per_pixel else kl.flatten(1).sum(1)
    return per_image.mean().to(x0_hat.dtype)


# --- sampler ----------------------------------------------------------------------------------------------------


def sampling_alphas(steps: int = 200) -> torch.Tensor:
    """The authors' grid (`bd_sampler`, steps <= 350): a_k = pi^((steps - k) / steps), k = 0..steps, pi =
    sigmoid(-13) = 2.26e-6, float64; geometric, from pi to exactly 1."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    log_ratio = torch.nn.functional.logsigmoid(torch.tensor(LOGIT_ALPHA_END, dtype=torch.float64)) / steps
    return torch.exp((steps - torch.arange(steps + 1, dtype=torch.float64)) * log_ratio)


def logit_update(logit_z: torch.Tensor, logit_p: torch.Tensor) -> torch.Tensor:
    """logit(z + (1 - z) p) = log(e^l + e^m + e^(l + m)) for l = logit z, m = logit p (their logsumexp)."""
    return torch.logsumexp(torch.stack([logit_z, logit_p, logit_z + logit_p]), dim=0)


def reverse_step(
    logit_z: torch.Tensor, x0_hat: torch.Tensor, a_cur, a_next, generator: Generators, *, eta: float = ETA
) -> torch.Tensor:
    """One sampler step in logit space, float64: z <- z + (1 - z) p, p ~ Beta(eta (a_next - a_cur) x0_hat,
    eta (1 - a_next x0_hat)). `a_cur`, `a_next`: numbers or one per row; `generator` as `sample_logit_beta`."""
    x = x0_hat.to(torch.float64)
    a_cur, a_next = _per_sample(a_cur, x), _per_sample(a_next, x)
    logit_p = sample_logit_beta(eta * (a_next - a_cur) * x, eta * (1 - a_next * x), generator)
    return logit_update(logit_z.to(torch.float64), logit_p)


def sample(
    predict_x0: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape: Sequence[int],
    start_image: torch.Tensor,
    *,
    steps: int = 200,
    seed: int = 0,
    eta: float = ETA,
    return_final_z: bool = False,
):
    """Images (float32, `shape` = (N, ...), beta range): the last x0_hat of the authors' sampler (`bd_sampler`).

    `start_image` (broadcastable to `shape`, beta range) is the training set's mean image: z starts as a draw of
    the forward marginal at the grid's first a, Beta(eta a_0 mean, eta (1 - a_0 mean)), as theirs. Each step calls
    `predict_x0(network_input, t)` with the whitened logit z (float32, on start_image's device) and t (float32,
    (N,), in [0.32, 1] for 200 steps: the grid's last a is 1 and the network is never called there); it returns
    x0_hat in the beta range. Guidance is the caller's: `predict_x0` may combine two network calls with
    `guided_logit_x0`. Image i's draws come from seed + i alone. `return_final_z`: also return the last z (which
    the authors return as their second image, sigmoid(logit z) / a_next with a_next = 1)."""
    count = shape[0]
    generators = [torch.Generator().manual_seed(seed + index) for index in range(count)]
    start = torch.as_tensor(start_image).to(torch.float64).expand(*shape)
    alphas = sampling_alphas(steps).to(start.device)
    logit_z = sample_logit_beta(eta * alphas[0] * start, eta * (1 - alphas[0] * start), generators)
    for a_cur, a_next in zip(alphas[:-1], alphas[1:], strict=True):
        t = time_of_alpha(a_cur).expand(count)
        network_input = whiten_logit(logit_z, t, eta=eta).to(torch.float32)
        x0_hat = predict_x0(network_input, t.to(torch.float32)).to(start.device, torch.float64)
        logit_z = reverse_step(logit_z, x0_hat, a_cur, a_next, generators, eta=eta)
    images = x0_hat.to(torch.float32)
    return (images, torch.sigmoid(logit_z).to(torch.float32)) if return_final_z else images

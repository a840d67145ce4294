"""Beta diffusion's math on hand-made tensors: the beta KL, the loss's zero at the data, forward and whitening
moments against Monte Carlo, the logit-space update, an oracle sampler, float32 at the ends of t, and seeding."""

from __future__ import annotations

import pytest
import torch

from recap.models.beta_diffusion import (
    ETA,
    SCALE,
    SHIFT,
    forward_sample,
    from_beta_range,
    guided_logit_x0,
    kl_beta,
    klub_loss,
    logit_alpha,
    logit_moments,
    logit_update,
    predicted_x0,
    reverse_step,
    sample,
    sample_logit_beta,
    sampling_alphas,
    time_of_alpha,
    to_beta_range,
    training_times,
    whiten_logit,
    x0_from_logit,
)


def _beta_range(*shape, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return SHIFT + SCALE * torch.rand(*shape, generator=generator, dtype=dtype)


def test_ranges_schedule_and_grid():
    images = torch.tensor([-1.0, 0.0, 1.0])
    assert torch.allclose(to_beta_range(images), torch.tensor([0.60, 0.795, 0.99]))
    assert torch.allclose(from_beta_range(to_beta_range(images)), images, atol=1e-6)
    assert logit_alpha(0.0) == 10.0 and logit_alpha(1.0) == -13.0
    t = torch.tensor([1e-5, 0.3, 1.0], dtype=torch.float64)
    assert torch.allclose(time_of_alpha(torch.sigmoid(logit_alpha(t))), t, rtol=0, atol=1e-12)
    alphas = sampling_alphas(200)
    assert alphas.shape == (201,) and alphas[-1] == 1.0
    assert torch.isclose(alphas[0], torch.sigmoid(torch.tensor(-13.0, dtype=torch.float64)), rtol=1e-12)
    ratios = alphas[1:] / alphas[:-1]
    assert torch.allclose(ratios, ratios[0].expand(200), rtol=1e-10)  # geometric
    times = training_times(1000, torch.Generator().manual_seed(0))
    assert times.min() >= 1e-5 and times.max() <= 1.0


# 1
def test_kl_beta_equals_torch_distributions():
    a1 = torch.tensor([0.5, 2.0, 30.0, 1e-3, 4000.0, 0.02], dtype=torch.float64)
    b1 = torch.tensor([0.7, 5.0, 1.5, 2.0, 100.0, 9999.9], dtype=torch.float64)
    a2 = torch.tensor([1.5, 2.5, 25.0, 3e-3, 4100.0, 0.015], dtype=torch.float64)
    b2 = torch.tensor([0.2, 4.0, 3.0, 1.0, 90.0, 9999.95], dtype=torch.float64)
    expected = torch.distributions.kl_divergence(torch.distributions.Beta(a1, b1), torch.distributions.Beta(a2, b2))
    assert torch.allclose(kl_beta(a1, b1, a2, b2), expected, rtol=1e-9, atol=1e-9)


# 2
@pytest.mark.parametrize("objective", ["klub", "elbo"])
def test_loss_and_gradient_vanish_at_the_data(objective):
    x0 = _beta_range(4, 3, 4, 4, seed=1)
    t = torch.tensor([1e-5, 0.2, 0.7, 1.0])
    x0_hat = x0.clone().requires_grad_(True)
    loss = klub_loss(x0_hat, x0, t, objective=objective)
    loss.backward()
    assert loss.item() == 0.0
    assert x0_hat.grad.abs().max().item() == 0.0
    away = klub_loss(x0 + 0.01, x0, t, objective=objective)
    assert away.item() > 0  # and it is not zero elsewhere


def test_klub_and_elbo_put_the_model_on_either_side_and_reduce_as_documented():
    x0, x0_hat = _beta_range(2, 3, 2, 2, seed=2), _beta_range(2, 3, 2, 2, seed=3)
    t = torch.tensor([0.3, 0.6])
    klub, elbo = klub_loss(x0_hat, x0, t), klub_loss(x0_hat, x0, t, objective="elbo")
    assert torch.allclose(elbo, klub_loss(x0, x0_hat, t))  # swapping the arguments is the other objective
    assert not torch.allclose(klub, elbo)
    assert torch.allclose(klub_loss(x0_hat, x0, t, per_pixel=False), klub * 12, rtol=1e-5)
    with pytest.raises(ValueError, match="objective"):
        klub_loss(x0_hat, x0, t, objective="l2")


# 3
@pytest.mark.parametrize("t", [0.5, 1.0])
def test_forward_draws_have_the_beta_moments(t):
    x0 = torch.full((200_000,), 0.8, dtype=torch.float64)
    z = torch.sigmoid(forward_sample(x0, t, torch.Generator().manual_seed(0)))
    mean = torch.sigmoid(torch.tensor(logit_alpha(t), dtype=torch.float64)) * 0.8
    variance = mean * (1 - mean) / (ETA + 1)
    assert abs(z.mean() - mean) < 5 * (variance / len(z)).sqrt()
    tolerance = 0.05 if t < 1 else 0.3  # t = 1: shape 0.018, a heavy right tail makes the variance noisy
    assert abs(z.var() / variance - 1) < tolerance
    # the tiny shapes at t = 1 do not underflow: E log z = digamma(A) - digamma(A + B) holds
    if t == 1.0:
        shape1 = ETA * mean
        logit_z = forward_sample(x0, t, torch.Generator().manual_seed(1))
        log_z = torch.nn.functional.logsigmoid(logit_z)
        expected = torch.digamma(shape1) - torch.digamma(torch.tensor(ETA, dtype=torch.float64))
        assert torch.isfinite(logit_z).all() and abs(log_z.mean() / expected - 1) < 0.02


# 4
@pytest.mark.parametrize("t", [1e-5, 0.43, 0.8, 1.0])
def test_whitening_matches_monte_carlo_over_uniform_images(t):
    generator = torch.Generator().manual_seed(4)
    x0 = _beta_range(100_000, seed=5, dtype=torch.float64)
    logit_z = forward_sample(x0, t, generator)
    mean, std = logit_moments(t)
    assert abs(logit_z.mean() - mean) < 0.02 * std
    assert abs(logit_z.std() / std - 1) < 0.02
    whitened = whiten_logit(logit_z, torch.full((len(x0),), t))
    assert abs(whitened.mean()) < 0.02 and abs(whitened.std() - 1) < 0.02


# 5
def test_logit_update_is_the_direct_update():
    generator = torch.Generator().manual_seed(6)
    z = torch.rand(1000, generator=generator, dtype=torch.float64) * 0.98 + 0.01
    p = torch.rand(1000, generator=generator, dtype=torch.float64) * 0.98 + 0.01
    assert torch.allclose(logit_update(torch.logit(z), torch.logit(p)), torch.logit(z + (1 - z) * p), rtol=1e-12)
    # and reverse_step is that update with p drawn from Beta(eta (a_next - a_cur) x0_hat, eta (1 - a_next x0_hat))
    logit_z, x0_hat = torch.logit(z[:12].reshape(2, 6)), _beta_range(2, 6, seed=7, dtype=torch.float64)
    a_cur, a_next = 0.3, 0.35
    stepped = reverse_step(logit_z, x0_hat, a_cur, a_next, torch.Generator().manual_seed(8))
    logit_p = sample_logit_beta(ETA * 0.05 * x0_hat, ETA * (1 - a_next * x0_hat), torch.Generator().manual_seed(8))
    p = torch.sigmoid(logit_p)
    assert torch.allclose(stepped, torch.logit(z[:12].reshape(2, 6) + (1 - z[:12].reshape(2, 6)) * p), rtol=1e-9)


# 6
def test_an_oracle_sampler_ends_at_its_image():
    target = _beta_range(3, 3, 6, 6, seed=9)
    start = torch.full((3, 6, 6), 0.7)  # the "mean image": the chain forgets it
    seen_times = []

    def oracle(network_input, t):
        assert network_input.dtype == torch.float32 and torch.isfinite(network_input).all()
        seen_times.append(t[0].item())
        return target

    images, final_z = sample(oracle, target.shape, start, steps=50, seed=3, return_final_z=True)
    assert images.dtype == torch.float32 and torch.equal(images, target)
    # z at a = 1 is a draw of Beta(eta x, eta (1 - x)): the image to within its std sqrt(x (1 - x) / eta) <= 0.005
    assert (final_z - target).abs().max() < 0.03
    assert abs((final_z - target).mean()) < 1e-3
    assert (
        len(seen_times) == 50
        and seen_times[0] == pytest.approx(1.0)
        and all(a > b for a, b in zip(seen_times[:-1], seen_times[1:], strict=True))
    )


# 7
@pytest.mark.parametrize("objective", ["klub", "elbo"])
@pytest.mark.parametrize("t", [1e-5, 1.0])
def test_float32_training_step_is_finite_at_the_ends_of_t(objective, t):
    x0 = torch.tensor([-1.0, -0.3, 0.0, 0.5, 1.0, 1.0]).reshape(1, 1, 2, 3).repeat(4, 3, 1, 1)
    x0 = to_beta_range(x0)
    times = torch.full((4,), t)
    logit_z = forward_sample(x0, times, torch.Generator().manual_seed(10))
    network_input = whiten_logit(logit_z, times)
    assert logit_z.dtype == network_input.dtype == torch.float32 and torch.isfinite(network_input).all()
    weight = torch.tensor([0.0, 1.0, -30.0, 30.0], requires_grad=True)  # includes saturated sigmoids
    output = weight.reshape(4, 1, 1, 1) * torch.ones_like(network_input)
    loss = klub_loss(predicted_x0(output, network_input), x0, times, objective=objective)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss > 0
    assert torch.isfinite(weight.grad).all()


# 8
def test_seeding_is_per_image():
    start = torch.full((1, 2, 4, 4), 0.75)

    def denoiser(network_input, t):  # a deterministic row-wise stand-in for a network
        return x0_from_logit(0.5 * network_input + t.reshape(-1, 1, 1, 1))

    three = sample(denoiser, (3, 2, 4, 4), start, steps=10, seed=5)
    assert torch.equal(three, sample(denoiser, (3, 2, 4, 4), start, steps=10, seed=5))
    assert not torch.equal(three, sample(denoiser, (3, 2, 4, 4), start, steps=10, seed=6))
    assert torch.allclose(sample(denoiser, (2, 2, 4, 4), start, steps=10, seed=6), three[1:], rtol=0, atol=1e-7)
    assert not torch.equal(three[0], three[1])


def test_guidance_is_plain_cfg_in_logit_space():
    uncond, cond = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])
    guided = guided_logit_x0(uncond, cond, 3.0)
    assert torch.equal(guided, torch.tensor([[3.0, 1.0]]))
    x0 = x0_from_logit(guided_logit_x0(uncond, cond, 100.0))
    assert (x0 >= SHIFT).all() and (x0 <= SHIFT + SCALE).all()

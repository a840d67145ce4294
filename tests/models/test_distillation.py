"""The distillation math (`recap.models.distillation`) on hand-made values: SiD's generator loss and its weight,
the start step, guidance on the clean-image estimate, SiDA's discriminator terms and warm-up, the EMA."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from recap.models.distillation import (
    clean_estimate,
    discriminator_logits,
    discriminator_loss,
    ema_beta,
    generator_adversarial_loss,
    guided,
    noisy,
    sid_generator_loss,
    sid_weight,
    sida_generator_objective,
    sida_phase,
    sigma_of,
    start_timestep,
)


@pytest.mark.parametrize(("schedule", "near"), [("squaredcos_cap_v2", 755), ("linear", 440), ("scaled_linear", 625)])
def test_the_start_step_has_sigma_two_and_a_half(schedule, near):
    alphas = DDPMScheduler(num_train_timesteps=1000, beta_schedule=schedule).alphas_cumprod
    start = start_timestep(alphas, 2.5)
    assert abs(float(sigma_of(alphas[start : start + 1])[0]) - 2.5) < 0.03
    assert abs(start - near) <= 15  # REFERENCE.md's reading of the three schedules


def _values(seed: int = 0, shape=(3, 2, 4, 4), dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator, dtype=dtype) for _ in range(3)]


def test_the_alpha_one_form_is_the_general_form_at_one():
    generated, y_real, y_fake = _values()
    weight = (generated - y_real).abs().mean(dim=(1, 2, 3), keepdim=True)
    lsg = ((y_real - y_fake) * (y_fake - generated) / weight).reshape(3, -1).sum(1).mean()
    assert torch.allclose(sid_generator_loss(generated, y_real, y_fake, alpha=1.0), lsg, atol=1e-12)
    assert not torch.allclose(sid_generator_loss(generated, y_real, y_fake, alpha=1.2), lsg)


def test_equal_networks_give_exactly_zero_loss():
    generated, y_real, _ = _values()
    assert float(sid_generator_loss(generated, y_real, y_real.clone(), alpha=1.2)) == 0.0


def test_the_weight_is_detached_and_floored():
    generated, y_real, _ = _values()
    generated.requires_grad_(True)
    weight = sid_weight(generated, y_real)
    assert not weight.requires_grad and weight.shape == (3, 1, 1, 1)
    assert float(sid_weight(y_real, y_real).min()) == 1e-5


def _generator_gradient(detach_estimates: bool) -> torch.Tensor:
    """d L / d x_g when y_real and y_fake are functions of x_g (as the frozen networks' outputs are)."""
    generated, _, _ = _values(1)
    generated.requires_grad_(True)
    y_real = torch.tanh(1.3 * generated) + 0.1  # stand-ins for the teacher and the fake network
    y_fake = torch.sin(generated)
    if detach_estimates:
        y_real, y_fake = y_real.detach(), y_fake.detach()
    sid_generator_loss(generated, y_real, y_fake, alpha=1.2).backward()
    return generated.grad


def test_the_gradient_flows_through_both_networks_inputs():
    """Only w is detached: detaching y_real and y_fake too changes the gradient (SiD's code keeps them)."""
    assert not torch.allclose(_generator_gradient(False), _generator_gradient(True))


def test_the_gradient_treats_the_weight_as_a_constant():
    generated, _, _ = _values(2)
    generated.requires_grad_(True)
    y_real, y_fake = torch.tanh(generated), torch.sin(generated)
    sid_generator_loss(generated, y_real, y_fake).backward()
    copy = generated.detach().clone().requires_grad_(True)
    weight = (copy - torch.tanh(copy)).abs().mean(dim=(1, 2, 3), keepdim=True).detach()
    y_real, y_fake = torch.tanh(copy), torch.sin(copy)
    ((y_real - y_fake) * ((y_real - copy) - (y_real - y_fake)) / weight).reshape(3, -1).sum(1).mean().backward()
    assert torch.allclose(generated.grad, copy.grad, atol=1e-12)


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_guidance_on_the_clean_estimate_equals_guidance_on_the_prediction(prediction):
    uncond, cond, x_t = _values(3)
    abar = torch.tensor([0.9, 0.4, 0.05], dtype=torch.float64)
    on_prediction = clean_estimate(guided(uncond, cond, 2.5), x_t, abar, prediction)
    on_estimates = guided(
        clean_estimate(uncond, x_t, abar, prediction), clean_estimate(cond, x_t, abar, prediction), 2.5
    )
    assert torch.allclose(on_prediction, on_estimates, atol=1e-10)


def test_the_clean_estimate_inverts_the_forward_process():
    clean, noise, _ = _values(4)
    abar = torch.tensor([0.9, 0.4, 0.05], dtype=torch.float64)
    x_t = noisy(clean, noise, abar)
    assert torch.allclose(clean_estimate(noise, x_t, abar, "epsilon"), clean, atol=1e-10)
    velocity = abar.sqrt().reshape(-1, 1, 1, 1) * noise - (1 - abar).sqrt().reshape(-1, 1, 1, 1) * clean
    assert torch.allclose(clean_estimate(velocity, x_t, abar, "v_prediction"), clean, atol=1e-10)


def test_the_discriminator_logit_is_the_token_mean_of_the_final_hidden_states():
    hidden = torch.randn(5, 16, 192)
    logits = discriminator_logits(hidden)
    assert logits.shape == (5, 192) and torch.allclose(logits[2], hidden[2].mean(0))


def test_the_discriminator_and_adversarial_losses():
    confident_real, confident_fake = torch.full((4, 8), 20.0), torch.full((4, 8), -20.0)
    assert float(discriminator_loss(confident_real, confident_fake)) < 1e-6
    assert float(discriminator_loss(confident_fake, confident_real)) > 30
    weight = torch.tensor([1.0, 2.0, 1.0, 1.0]).reshape(4, 1, 1, 1)
    fooled = generator_adversarial_loss(confident_real, weight, pixels=3 * 32 * 32)
    caught = generator_adversarial_loss(confident_fake, weight, pixels=3 * 32 * 32)
    assert float(fooled) < 1e-3 < float(caught)
    # per sample: BCE(fake, 1) / w * C*H*W, then the batch mean
    per_sample = torch.full((4,), 20.0) / weight.reshape(4) * 3 * 32 * 32
    assert torch.allclose(caught, per_sample.mean(), rtol=1e-6)


def test_sidas_objective_and_warm_up():
    sid, gan = torch.tensor(2.0), torch.tensor(30.0)
    assert float(sida_generator_objective(sid, gan, sid_scale=100, gan_scale=0.01)) == pytest.approx(100.15)
    assert float(sida_generator_objective(sid, None, sid_scale=100, gan_scale=0.01)) == pytest.approx(100.0)
    assert sida_phase(99_999, 100_000, 200_000) == (False, False)
    assert sida_phase(100_000, 100_000, 200_000) == (True, False)
    assert sida_phase(200_000, 100_000, 200_000) == (True, True)


def test_the_ema_half_life_ramps_up_then_holds():
    assert ema_beta(32, 0, 50_000) == pytest.approx(0.0, abs=1e-12)  # nothing seen: follow the generator
    assert ema_beta(32, 10_000, 50_000) == pytest.approx(0.5 ** (32 / 500))  # ramp-up: 5% of 10,000 images
    assert ema_beta(32, 10**7, 50_000) == pytest.approx(0.5 ** (32 / 50_000))

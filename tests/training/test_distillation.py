"""`recap distill-t2i` on the shipped Recap-DiT in a tiny setting: the invariants that pin SiD's algorithm (zero
loss and gradient when the fake network is the teacher, which network each step reaches), data-free prompts,
exact resume, SiDA on real images, Ray Train workers, and the one-step model `sample` and `eval-t2i` take."""

from __future__ import annotations

import json

import pytest
import torch

from recap.models.assets import shipped_t2i
from recap.training.distillation import DistillationTrainer
from recap.training.distillation_config import DistillationConfig, read_prompts

PROMPTS = [
    "The image shows one object on a white background. A small red heart is in the top left.",
    "The image shows one object on a gray background. A large blue circle is in the bottom right.",
    "The image shows two objects on a beige background. A small green star is in the top right. "
    "A large yellow square is in the bottom left.",
]


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return path


def _trainer(tmp_path, prompt_file, **options) -> DistillationTrainer:
    config = DistillationConfig(
        teacher=str(shipped_t2i()), prompts=str(prompt_file), out=str(tmp_path / "run"), batch_size=3, **options
    )
    trainer = DistillationTrainer(config, progress=False)
    trainer.prepare_data()
    trainer.build()
    trainer.prompts = trainer.all_prompts
    return trainer


def _gradients(network) -> list[torch.Tensor]:
    return [parameter.grad for parameter in network.parameters() if parameter.grad is not None]


def test_with_the_fake_network_equal_to_the_teacher_the_generator_loss_and_gradient_are_zero(tmp_path, prompt_file):
    """Exactly zero loss, and a gradient zero to float32 rounding (a probe measured <= 2e-7 in float32 and 3e-16
    in float64), against the gradient once the fake network has moved a little."""
    trainer = _trainer(tmp_path, prompt_file, guidance_scale=2.0)
    loss, _ = trainer.generator_loss(0, 0)
    loss.backward()
    assert loss.item() == 0.0
    still = max(float(gradient.abs().max()) for gradient in _gradients(trainer.generator))
    trainer.generator.zero_grad(set_to_none=True)
    with torch.no_grad():
        for parameter in trainer.fake.parameters():
            parameter.add_(1e-3 * torch.randn_like(parameter, generator=torch.Generator().manual_seed(0)))
    loss, _ = trainer.generator_loss(0, 0)
    loss.backward()
    moved = max(float(gradient.abs().max()) for gradient in _gradients(trainer.generator))
    assert loss.item() != 0.0 and still <= 1e-6 and still < 1e-6 * moved, (still, moved)
    # so the first update that moves anything must be the fake step's


def test_each_step_reaches_only_its_own_network(tmp_path, prompt_file):
    trainer = _trainer(tmp_path, prompt_file)
    trainer.fake_loss(0, 0)[0].backward()
    assert _gradients(trainer.fake) and not _gradients(trainer.generator) and not _gradients(trainer.teacher)
    trainer.fake.zero_grad(set_to_none=True)
    trainer.generator_loss(0, 0)[0].backward()
    assert _gradients(trainer.generator) and not _gradients(trainer.fake) and not _gradients(trainer.teacher)
    assert all(parameter.requires_grad for parameter in trainer.fake.parameters())  # handed back for its step


def test_the_generator_starts_at_sigma_two_and_a_half_and_the_guidance_scales_are_set_apart(tmp_path, prompt_file):
    trainer = _trainer(tmp_path, prompt_file, guidance_scale=3.0, kappa4=1.5)
    assert trainer.start == 755 and abs(trainer.start_sigma - 2.5) < 0.01  # the teacher's cosine schedule
    assert trainer.config.kappas == (3.0, 3.0, 3.0, 1.5)
    fake_texts = trainer.draws(0, 0, "fake")["texts"]
    assert set(fake_texts) <= {*PROMPTS, ""}  # dropped to the empty caption in the fake step only
    assert "" not in trainer.draws(0, 0, "generator")["texts"]
    assert trainer.draws(5, 0, "fake")["texts"] == trainer.draws(5, 0, "fake")["texts"]  # from the iteration alone


def test_sida_warm_up_defaults_scale_with_the_run():
    config = DistillationConfig(teacher="t", prompts="p", out="o", method="sida", train="s", iterations=1000)
    assert config.warmups == (160, 320)  # 0.5% and 1% of 32,000 images
    assert DistillationConfig(teacher="t", prompts="p", out="o").warmups == (0, 0)
    with pytest.raises(ValueError, match="train"):
        DistillationConfig(teacher="t", prompts="p", out="o", method="sida")


def test_sid_reads_prompts_and_never_an_image(captioned_shards, tmp_path, monkeypatch):
    """Data-free: prompts from the recaption job's tables; any image read (tar, PIL) would raise."""
    import PIL.Image

    import recap.stages.webdataset_reader as reader
    import recap.training.shard_rows as shard_rows

    def refuse(*args, **kwargs):
        raise AssertionError("SiD read an image")

    monkeypatch.setattr(PIL.Image, "open", refuse)
    monkeypatch.setattr(reader, "read_shard", refuse)
    monkeypatch.setattr(shard_rows, "read_shard", refuse)  # the name the shared row iterator holds
    _, captions = captioned_shards
    config = DistillationConfig(
        teacher=str(shipped_t2i()), prompts=str(captions), out=str(tmp_path / "run"), iterations=2, batch_size=2
    )
    summary = DistillationTrainer(config, progress=False).run()
    assert summary["prompts"] == len(read_prompts(captions)) > 0
    info = json.loads((tmp_path / "run" / "model" / "recap_t2i.json").read_text())
    assert info["one_step"] == {"start_timestep": 755, "sigma": pytest.approx(2.5, abs=0.01)}


def test_a_resumed_run_ends_with_the_model_of_an_unbroken_one(tmp_path, prompt_file):
    def run(out, iterations):
        config = DistillationConfig(
            teacher=str(shipped_t2i()), prompts=str(prompt_file), out=str(out), iterations=iterations,
            batch_size=2, checkpoint_every=2,
        )  # fmt: skip
        return DistillationTrainer(config, progress=False).run()

    run(tmp_path / "broken", 2)
    resumed = run(tmp_path / "broken", 4)
    run(tmp_path / "unbroken", 4)
    assert resumed["workers"][0]["iterations_this_run"] == 2
    weights = "model/transformer/diffusion_pytorch_model.safetensors"
    assert (tmp_path / "broken" / weights).read_bytes() == (tmp_path / "unbroken" / weights).read_bytes()


def test_sida_trains_the_discriminator_and_adds_the_adversarial_term(captioned_shards, tmp_path):
    shards, captions = captioned_shards
    config = DistillationConfig(
        teacher=str(shipped_t2i()), prompts=str(captions), train=str(shards), out=str(tmp_path / "run"),
        method="sida", iterations=3, batch_size=2, generator_warmup_images=2, gan_warmup_images=4,
    )  # fmt: skip
    DistillationTrainer(config, progress=False).run()
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert set(history[0]) == {"iteration", "images", "fake", "discriminator"}  # warm-up: no generator step
    assert "generator" in history[1] and "adversarial" not in history[1]
    assert "adversarial" in history[2]


@pytest.mark.slow
def test_two_ray_train_workers_distil_one_generator(ray_cluster, tmp_path, prompt_file):
    config = DistillationConfig(
        teacher=str(shipped_t2i()), prompts=str(prompt_file), out=str(tmp_path / "run"), iterations=2,
        batch_size=2, workers=2, ray_address=ray_cluster,
    )  # fmt: skip
    summary = DistillationTrainer(config, progress=False).run()
    assert [worker["rank"] for worker in summary["workers"]] == [0, 1]
    assert summary["start_timestep"] == 755 and (tmp_path / "run" / "model" / "recap_t2i.json").exists()


def test_the_one_step_model_draws_with_one_call_and_refuses_a_negative(tmp_path, prompt_file):
    from recap.cli import main
    from recap.models.t2i import load_t2i

    config = DistillationConfig(
        teacher=str(shipped_t2i()), prompts=str(prompt_file), out=str(tmp_path / "run"), iterations=1, batch_size=2
    )
    DistillationTrainer(config, progress=False).run()
    model = load_t2i(tmp_path / "run" / "model")
    assert model.network_calls(20) == 1 and load_t2i(shipped_t2i()).network_calls(20) == 40
    first = model.generate(PROMPTS[:2], seed=4, steps=20, scale=7.0)
    assert first.shape == (2, 32, 32, 3) and (first == model.generate(PROMPTS[:2], seed=4, steps=3)).all()
    assert main(["sample", "--model", str(tmp_path / "run" / "model"), "--prompt", PROMPTS[0], "--out",
                 str(tmp_path / "samples"), "--quiet"]) == 0  # fmt: skip
    code = main(["sample", "--model", str(tmp_path / "run" / "model"), "--prompt", PROMPTS[0], "--negative", "red",
                 "--out", str(tmp_path / "no"), "--quiet"])  # fmt: skip
    assert code == 2

"""Train CLIP with open_clip on a mix of original captions and recaptions (Recap-CLIP).

    recap train-clip --train runs/demo/shards --captions runs/demo/captions --p-original 0.8 --out runs/clip

The parts are open_clip's: its model factory (`create_model_and_transforms`, the tiny configs registered
with it), its tokenizer classes, `open_clip.ClipLoss`, and open_clip_train's warm-up + cosine schedule
(`open_clip_train.scheduler.cosine_lr`); the AdamW parameter groups (no weight decay on gains, biases and the
logit scale) and the logit-scale clamp at ln(100) follow `open_clip_train.main` / `train_one_epoch`. What is
recap's: the data (the job's reader and decode stage, with the paper's caption mixing, `clip_data.py`) and
the step-based loop with a checkpoint that resumes, both shared with the DiT (`trainer.py`), and the export
as an open_clip folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from recap.training.trainer import MixedCaptionConfig, MixedCaptionTrainer


@dataclass(kw_only=True)
class ClipTrainingConfig(MixedCaptionConfig):
    """What `recap train-clip` trains: the shared data and step settings, and the CLIP model."""

    model: str = "recap-clip-tiny"  # an open_clip model name (tiny configs registered) or a CLIP folder
    init: str | None = None  # a checkpoint for `model` to start from (real models); None: random
    weight_decay: float = 0.1
    tokenizer_vocab: int = 1024  # BPE size for tiny configs (must match their text_cfg.vocab_size)


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """open_clip_train's rule: no weight decay on gains, biases, norms and the logit scale."""
    exclude = [p for n, p in model.named_parameters() if p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n]
    exclude += [p for n, p in model.named_parameters() if "logit_scale" in n and not any(p is e for e in exclude)]
    ids = {id(p) for p in exclude}
    include = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    return [{"params": exclude, "weight_decay": 0.0}, {"params": include, "weight_decay": weight_decay}]


class ClipTrainer(MixedCaptionTrainer):
    """CLIP on the shared loop: open_clip's model and `ClipLoss` (which gathers the other workers' features),
    AdamW with open_clip_train's parameter groups, the logit-scale clamp, and an open_clip folder at OUT/model."""

    config_class = ClipTrainingConfig
    run_name = "train-clip"
    config: ClipTrainingConfig

    @cached_property
    def image_size(self) -> int:
        return model_image_size(self.config.model)

    def _tokenizer_folder(self, captions: dict) -> Path | None:
        """For a tiny config, OUT/tokenizer (a BPE trained on the captions the first time); else None."""
        from recap.models.clip import register_configs, train_clip_tokenizer

        if self.config.model not in register_configs():
            return None
        folder = self.out / "tokenizer"
        if not (folder / "tokenizer.json").exists():
            texts = [text for pair in captions.values() for text in pair if text]
            train_clip_tokenizer(texts, self.config.tokenizer_vocab, folder)
        return folder

    def prepare(self) -> None:
        self._tokenizer_folder(self.training_data[1])  # trained once, here, before any worker starts

    def build_model(self):
        """From `init` or new (a tiny config gets a BPE trained on the captions), or an open_clip model with its
        own tokenizer and optional `init` weights."""
        from recap.models.clip import load_clip, new_clip

        config = self.config
        tokenizer_folder = self._tokenizer_folder(self.training_data[1])
        if tokenizer_folder is not None:
            model, _, self.tokenizer, self.model_cfg = new_clip(config.model, tokenizer_folder, seed=config.seed)
            if config.init:
                model.load_state_dict(self.torch.load(config.init, map_location="cpu"))
        else:
            model, _, self.tokenizer = load_clip(config.model, pretrained=config.init)
            self.model_cfg = _model_cfg(config.model)
        self.bare = model
        return model

    def build_optimizer(self, model):
        config = self.config
        return self.torch.optim.AdamW(
            parameter_groups(model, config.weight_decay), lr=config.learning_rate, betas=(0.9, 0.98), eps=1e-6
        )

    def loss(self, model, images: np.ndarray, texts: list[str], step: int, rank: int):
        import open_clip

        from recap.models.clip import image_tensor

        if not hasattr(self, "loss_fn"):  # gathers the other workers' features
            self.loss_fn = open_clip.ClipLoss(rank=rank, world_size=self.world_size)
        image_features, text_features, logit_scale = model(image_tensor(images, self.bare), self.tokenizer(texts))[:3]
        return self.loss_fn(image_features, text_features, logit_scale)

    def after_step(self, model) -> None:
        with self.torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # as open_clip_train does, after each step

    def export(self, model) -> None:
        from recap.models.clip import save_clip_folder

        save_clip_folder(model, self.model_cfg, self.tokenizer, self.out / "model")


def _model_cfg(model: str) -> dict:
    """The open_clip config of a CLIP folder or a model name."""
    from recap.models.clip import CONFIG_FILE, model_config

    folder = Path(model.removeprefix("local-dir:"))
    if (folder / CONFIG_FILE).is_file():
        return json.loads((folder / CONFIG_FILE).read_text())["model_cfg"]
    return model_config(model)


def model_image_size(model: str) -> int:
    size = _model_cfg(model)["vision_cfg"]["image_size"]
    return size[0] if isinstance(size, list | tuple) else size

"""The text a tiny captioner's tokenizer learns from, drawn from the embedded world.

Kept in training (not beside the model) so that `recap.models` does not depend on the world generator.
"""

from __future__ import annotations

import numpy as np

from recap.models.prompts import PROMPT_PRESETS
from recap.world.captions import ALT_TEXT_KINDS, alt_text, ground_truth_caption
from recap.world.scene import sample_scene
from recap.world.vocabulary import DIFFICULTIES


def tokenizer_corpus(seed: int = 0, scenes: int = 3000) -> list[str]:
    """Text the tiny tokenizer learns from: captions, alt-texts and prompts of every difficulty."""
    texts = [preset.text for preset in PROMPT_PRESETS.values()]
    for d_index, difficulty in enumerate(DIFFICULTIES.values()):
        rng = np.random.default_rng([seed, d_index])
        for _ in range(scenes // len(DIFFICULTIES)):
            scene = sample_scene(rng, difficulty)
            texts.append(ground_truth_caption(scene))
            texts.extend(alt_text(scene, kind, rng, difficulty) for kind in ALT_TEXT_KINDS)
    return texts

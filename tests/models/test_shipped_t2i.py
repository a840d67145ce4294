"""The shipped Recap-DiT pair (recap/assets/dit-tiny at p=0, dit-tiny-p1 at p=1): both load offline against the
shipped reference CLIP, and on a world they never saw the p=0 model draws what the captions ask for more often
than chance, as the shipped judge reads it (what `make demo` shows)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from recap.evaluation.t2i_eval import T2IEvalConfig, T2IEvaluator
from recap.models.assets import shipped_t2i
from recap.models.t2i import load_t2i


def test_shipped_pair_is_the_same_recipe_at_both_ends_of_p():
    recaptions, alt_texts = load_t2i(shipped_t2i(0.0)), load_t2i(shipped_t2i(1.0))
    assert recaptions.info["training"]["p_original"] == 0.0 and alt_texts.info["training"]["p_original"] == 1.0
    same = {key: value for key, value in recaptions.info["training"].items() if key not in ("p_original", "out")}
    assert same == {key: alt_texts.info["training"][key] for key in same}
    assert (recaptions.info["guidance_scale"], alt_texts.info["guidance_scale"]) == (2.0, 6.0)
    with pytest.raises(ValueError, match="shipped for p"):
        shipped_t2i(0.5)


def test_shipped_dit_draws_eval_captions_the_judge_can_read(small_world, tmp_path):
    models = [f"p0.0={shipped_t2i(0.0)}", f"p1.0={shipped_t2i(1.0)}"]
    config = T2IEvalConfig(models=models, eval=str(small_world / "eval"), out=str(tmp_path), limit=40, negatives=False)
    report = T2IEvaluator(config, progress=False).run()
    scores = report["models"]["p0.0"]["prompt_attribute"]
    # On the sweep's eval (300 prompts) p=0 scores colour 0.446, presence 0.664, object 0.279 (p=1: 0.045); chance
    # for colour is 0.125 and for the whole object (5 shapes x 8 colours x 2 sizes) under 0.01.
    assert scores["colour"] >= 0.3 and scores["presence"] >= 0.5
    assert scores["object_accuracy"] >= 0.1
    assert scores["object_accuracy"] > report["models"]["p1.0"]["prompt_attribute"]["object_accuracy"]
    grid = np.asarray(Image.open(report["models"]["p0.0"]["grid"]))
    assert grid.shape[0] > 128 and grid.shape[1] >= 8 * 128

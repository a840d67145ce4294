"""The job reads the captioner's input size from its processor JSON, in both layouts, without transformers."""

import json

from recap.jobs.caption import captioner_image_size
from recap.models.assets import shipped_captioner


def test_shipped_captioner_is_64_px():
    assert captioner_image_size(str(shipped_captioner())) == 64


def test_llava_hf_preprocessor_config(tmp_path):
    # the layout of llava-hf / xtuner transformers checkpoints (CLIP ViT-L/14-336 tower)
    config = {"crop_size": {"height": 336, "width": 336}, "size": {"shortest_edge": 336}}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    assert captioner_image_size(str(tmp_path)) == 336


def test_nested_processor_config(tmp_path):
    (tmp_path / "processor_config.json").write_text(json.dumps({"image_processor": {"size": {"shortest_edge": 224}}}))
    assert captioner_image_size(str(tmp_path)) == 224

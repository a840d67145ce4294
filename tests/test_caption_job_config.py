"""The job reads the captioner's input size from its processor JSON, in both layouts, without transformers, and
refuses a prompt meant for questions."""

import json

import pytest

from recap.jobs.caption import CaptionJobConfig, captioner_image_size
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


def _parse(argv):
    import argparse

    from recap.jobs.caption import add_job_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_job_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_every_captioner_field_from_a_config_file_and_the_command_line(tmp_path):
    import pytest

    from recap.errors import RecapError

    engine = {"model": "/models/llava", "backend": "vllm", "max_model_len": 4096, "gpu_memory_utilization": 0.8}
    (tmp_path / "job.json").write_text(json.dumps({"captioner": {**engine, "temperature": 0.2}, "actors": 4}))
    base = ["--config", str(tmp_path / "job.json"), "--input", str(tmp_path), "--output", str(tmp_path / "out")]
    config = _parse([*base, "--captioner-tensor-parallel-size", "2", "--batch-size", "4", "--captioner-top-p", "0.9"])
    captioner = config.captioner
    assert (captioner.model, captioner.backend, captioner.max_model_len) == ("/models/llava", "vllm", 4096)
    assert (captioner.gpu_memory_utilization, captioner.temperature, captioner.top_p) == (0.8, 0.2, 0.9)
    assert (captioner.tensor_parallel_size, captioner.batch_size, config.actors) == (2, 4, 4)
    assert _parse([*base, "--captioner", "/other"]).captioner.model == "/other"
    # a field of the old flat layout is named, with where it belongs now; a misspelt nested one too
    (tmp_path / "old.json").write_text(json.dumps({"prompt": "short"}))
    with pytest.raises(RecapError, match="'prompt' belongs under 'captioner'"):
        _parse(["--config", str(tmp_path / "old.json"), "--input", str(tmp_path), "--output", str(tmp_path)])
    (tmp_path / "typo.json").write_text(json.dumps({"captioner": {"temprature": 0.5}}))
    with pytest.raises(RecapError, match=r"unknown field\(s\) \['temprature'\] in captioner"):
        _parse(["--config", str(tmp_path / "typo.json"), "--input", str(tmp_path), "--output", str(tmp_path)])


def test_a_question_prompt_is_refused_by_the_caption_job(tmp_path):
    with pytest.raises(ValueError, match="asks a question per image: it is for `recap eval-reasoning`"):
        CaptionJobConfig(input=str(tmp_path), output=str(tmp_path / "out"), captioner={"prompt": "reasoning"})

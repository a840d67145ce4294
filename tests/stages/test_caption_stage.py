"""The caption stage with the shipped captioner: failures are retried, then only the failing images are marked."""

from dataclasses import dataclass

import pytest

from recap.models.assets import shipped_captioner
from recap.models.captioner import CaptionerConfig
from recap.pipeline.stage import apply_stage
from recap.schema import STATUS_CAPTION_FAILED, STATUS_OK
from recap.stages.caption import CaptionImages
from recap.stages.decode import DecodeImages
from recap.stages.webdataset_reader import list_shards, read_shard

from ..shard_factory import bad_input_shard


@dataclass(kw_only=True)
class FailsFirstCalls(CaptionImages):
    """The real captioner behind a fault that hits the first `failures` calls (an out-of-memory blip, say)."""

    failures: int = 1

    def _caption(self, images, alt_texts):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls <= self.failures:
            raise RuntimeError(f"transient fault on call {self.calls}")
        return super()._caption(images, alt_texts)


@dataclass(kw_only=True)
class FailsOnOneImage(CaptionImages):
    """The real captioner behind a fault that recurs whenever one particular image is in the batch."""

    poison_caption: str = "alpha"

    def _caption(self, images, alt_texts):
        if self.poison_caption in alt_texts:
            raise ValueError("this image always breaks the model")
        return super()._caption(images, alt_texts)


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    path = tmp_path_factory.mktemp("caption-stage") / "00000.tar"
    bad_input_shard(path)
    batch = next(read_shard(list_shards(str(path))[0], rows_per_batch=100))
    return apply_stage(DecodeImages(image_size=64, max_pixels=50_000), batch)


def _stage(cls, **options):
    config = CaptionerConfig(model=str(shipped_captioner()), batch_size=32, max_new_tokens=64)
    return cls(captioner=config, retry_wait_s=0.0, **options)


def test_a_transient_failure_is_retried_and_nothing_is_lost(decoded):
    stage = _stage(FailsFirstCalls, failures=2, retries=2)
    out = apply_stage(stage, decoded)
    ok = [i for i, status in enumerate(decoded["status"]) if status == STATUS_OK]
    assert stage.calls == 3
    assert [out["status"][i] for i in ok] == [STATUS_OK] * len(ok)
    assert all(out["re_caption"][i] for i in ok)
    # rows that were already bad pass through untouched
    assert [s for s in out["status"] if s != STATUS_OK] == [s for s in decoded["status"] if s != STATUS_OK]


def test_a_persistent_failure_marks_only_the_failing_image(decoded):
    out = apply_stage(_stage(FailsOnOneImage, retries=1), decoded)
    alt_texts = list(decoded["org_caption"])
    poisoned = alt_texts.index("alpha")
    assert out["status"][poisoned] == STATUS_CAPTION_FAILED
    assert "failed after 1 retries" in out["error"][poisoned] and "always breaks" in out["error"][poisoned]
    assert out["re_caption"][poisoned] is None
    others = [i for i, s in enumerate(decoded["status"]) if s == STATUS_OK and i != poisoned]
    assert len(others) >= 6 and all(out["status"][i] == STATUS_OK and out["re_caption"][i] for i in others)


def test_retries_exhausted_on_every_image_marks_the_whole_batch(decoded):
    out = apply_stage(_stage(FailsFirstCalls, failures=10**6, retries=1), decoded)
    ok = [i for i, status in enumerate(decoded["status"]) if status == STATUS_OK]
    assert all(out["status"][i] == STATUS_CAPTION_FAILED for i in ok)
    assert len(out["status"]) == len(decoded["status"])  # every input row is still there, exactly once

"""Shared fixtures: a small embedded world and its img2dataset download, made once per test session."""

from __future__ import annotations

import os

# Set before anything imports transformers, datasets or img2dataset: tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# Test clusters run without Ray's token authentication; `ray job submit` must match (see README).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest  # noqa: E402

from recap.world.generate import WorldConfig, generate_world  # noqa: E402

SMALL_WORLD = WorldConfig(seed=7, size=160, sft_size=40, eval_size=40, samples_per_metadata_file=100)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A 160-image world (two metadata files in web) with the default failure mix."""
    folder = tmp_path_factory.mktemp("world") / "world"
    generate_world(SMALL_WORLD, folder, progress=False)
    return folder


@pytest.fixture(scope="session")
def world_download(small_world, tmp_path_factory):
    """The small world's web split downloaded with real img2dataset from the local server."""
    from recap.ingest.download import DownloadConfig, download_world

    out = tmp_path_factory.mktemp("shards") / "shards"
    config = DownloadConfig(
        metadata=str(small_world / "web" / "metadata"), out=str(out), image_size=64, samples_per_shard=64, timeout=2
    )
    summary = download_world(small_world, "web", config)
    return out, summary


@pytest.fixture(scope="session")
def job_shards(world_download, tmp_path_factory):
    """Three webdataset shards of 20 downloaded world samples each, for the recaption job's tests."""
    from .shard_factory import reshard

    source, _ = world_download
    shards = tmp_path_factory.mktemp("job-shards") / "shards"
    reshard(source, shards, samples_per_shard=20)
    for extra in sorted(shards.glob("*.tar"))[3:]:
        extra.unlink()
    return shards


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray for the whole session (2 CPUs, like CI); yields its GCS address for other drivers."""
    import ray

    # "local": a new cluster even when `ray start` left /tmp/ray/ray_current_cluster behind
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def captioned_shards(world_download, tmp_path_factory):
    """The small world's download in shards of 12 samples, recaptioned by the job (local executor) with the
    shipped captioner: (shards folder, caption tables folder), for the jobs that start from caption tables."""
    from recap.jobs.caption import CaptionJobConfig, run_caption_job

    from .shard_factory import reshard

    source, _ = world_download
    root = tmp_path_factory.mktemp("captioned")
    reshard(source, root / "shards", samples_per_shard=12)
    config = CaptionJobConfig(
        input=[str(root / "shards")], output=str(root / "captions"), executor="local", captioner={"batch_size": 32}
    )
    run_caption_job(config, progress=False)
    return root / "shards", root / "captions"


@pytest.fixture(scope="session")
def scored_shards(captioned_shards, tmp_path_factory):
    """`captioned_shards` scored by the scoring job (local executor) with the shipped reference CLIP: the folder
    of scored tables."""
    from recap.jobs.score import ScoreJobConfig, run_score_job

    shards, captions = captioned_shards
    out = tmp_path_factory.mktemp("scored") / "scored"
    run_score_job(ScoreJobConfig(input=[str(shards)], captions=str(captions), output=str(out), executor="local"))
    return out

"""img2dataset's ray distributor behind `recap download` and pipelines/download_datacomp.py, on a real Ray cluster
against the world's server: the same result as the multiprocessing run, a crash resumed, and a `ray job submit`."""

import json
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recap.errors import RecapError
from recap.ingest.download import SUMMARY_FILE, DownloadConfig, download, download_world, summarise

from ..job_helpers import kill_when_files
from ..ray_nodes import BIN, LocalRayCluster, cluster_env

REPOSITORY = Path(__file__).resolve().parents[2]
PIPELINE = REPOSITORY / "pipelines" / "download_datacomp.py"
# The settings of the `world_download` fixture (the multiprocessing run), as options.
WORLD_OPTIONS = ["--image-size", "64", "--samples-per-shard", "64", "--timeout", "2"]


def _shard_rows(out: Path) -> list[dict]:
    """Every row of img2dataset's per-shard parquet files, with the shard it is in."""
    rows = []
    for path in sorted(out.glob("*.parquet")):
        table = pq.read_table(path, columns=["uid", "status", "key"])
        rows.extend({**row, "shard": path.stem} for row in table.to_pylist())
    return rows


def _successful_uids(out: Path) -> set[str]:
    return {row["uid"] for row in _shard_rows(out) if row["status"] == "success"}


def _metadata_uids(world: Path) -> list[str]:
    files = sorted((world / "web" / "metadata").glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f, columns=["uid"]) for f in files])["uid"].to_pylist()


def test_ray_distributor_matches_multiprocessing(small_world, world_download, ray_cluster, tmp_path):
    reference_out, reference = world_download
    out = tmp_path / "shards"
    command = [str(BIN / "recap"), "download", "--world", str(small_world), "--out", str(out), *WORLD_OPTIONS]
    command += ["--distributor", "ray", "--ray-address", ray_cluster]
    result = subprocess.run(command, env=cluster_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    summary = summarise(out)
    assert _successful_uids(out) == _successful_uids(reference_out) and summary.successes == reference.successes
    assert summary.failures_by_reason == reference.failures_by_reason
    assert (summary.count, summary.shards) == (reference.count, reference.shards)
    written = json.loads((out / SUMMARY_FILE).read_text())
    assert written["config"]["distributor"] == "ray" and written["metadata_rows"] == reference.count


def test_killed_ray_download_resumes_with_every_row_once(small_world, ray_cluster, tmp_path):
    out = tmp_path / "shards"
    # 16 samples per shard: 11 shards (7 + 4 from the two metadata files), two at a time on the 2-CPU cluster.
    arguments = ["--world", str(small_world), "--out", str(out), "--image-size", "64", "--samples-per-shard", "16"]
    arguments += ["--timeout", "2", "--threads", "8", "--ray-address", ray_cluster]
    kill_when_files(PIPELINE, arguments, out, "*_stats.json", 3, cluster_env())
    finished_before = len(list(out.glob("*_stats.json")))
    assert 3 <= finished_before < 11, "the driver died mid-run"
    assert not (out / SUMMARY_FILE).exists()

    result = subprocess.run(
        [str(BIN / "python"), str(PIPELINE), *arguments],
        env=cluster_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    rows = _shard_rows(out)
    uids = [row["uid"] for row in rows]
    assert sorted(uids) == sorted(_metadata_uids(small_world)), "every metadata row in exactly one shard"
    assert summary["count"] == len(rows) == 160 and summary["shards"] == 11
    assert summary["successes"] + summary["failed_to_download"] + summary["failed_to_resize"] == 160
    tar_keys = Counter()
    for tar in sorted(out.glob("*.tar")):
        with tarfile.open(tar) as archive:
            tar_keys.update({member.name.rsplit(".", 1)[0] for member in archive.getmembers()})
    assert set(tar_keys.values()) == {1}, "no sample written to two tars"
    assert set(tar_keys) == {row["key"] for row in rows if row["status"] == "success"}

    # A third run finds every shard done (and the summary of the last run no longer trips img2dataset's resume).
    again = download_world(
        small_world,
        "web",
        DownloadConfig(metadata=str(small_world / "web" / "metadata"), out=str(out), samples_per_shard=16, timeout=2),
    )
    assert again.count == 160 and again.successes == summary["successes"]


@pytest.mark.slow
def test_ray_job_submit_downloads_the_world(small_world, world_download, tmp_path_factory, tmp_path):
    _, reference = world_download
    out = tmp_path / "shards"
    cluster = LocalRayCluster(tmp_path_factory.mktemp("ray-download-head"))
    try:
        cluster.start_head(num_cpus=2)
        cluster.wait_for(1)
        entrypoint = ["python", "pipelines/download_datacomp.py", "--world", str(small_world), "--out", str(out)]
        command = [str(BIN / "ray"), "job", "submit", "--address", cluster.dashboard, "--working-dir", ".", "--"]
        result = subprocess.run(
            [*command, *entrypoint, *WORLD_OPTIONS],
            cwd=REPOSITORY,
            env=cluster_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        cluster.stop()
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "succeeded" in result.stdout
    summary = summarise(out)
    assert summary.failures_by_reason == reference.failures_by_reason and summary.successes == reference.successes


def test_download_job_config_file_and_options(tmp_path):
    import runpy

    build_config = runpy.run_path(str(PIPELINE))["build_config"]
    config_file = tmp_path / "download.json"
    config_file.write_text(json.dumps({"threads": 64, "keep_columns": ["uid", "sha256"], "timeout": 20}))
    config, _ = build_config(
        ["--config", str(config_file), "--metadata", "s3://b/m", "--out", "s3://b/s", "--timeout", "5"]
    )
    assert (config.metadata, config.out, config.distributor) == ("s3://b/m", "s3://b/s", "ray")
    assert (config.threads, config.timeout, config.keep_columns) == (64, 5, ("uid", "sha256"))
    assert (config.image_size, config.resize_mode, config.verify_hash) == (512, "keep_ratio_largest", True)
    config, _ = build_config(["--metadata", "m", "--out", "o", "--distributor", "multiprocessing", "--no-verify-hash"])
    assert config.distributor == "multiprocessing" and config.verify_hash is False
    shipped = REPOSITORY / "pipelines" / "configs" / "datacomp-download.json"
    config, _ = build_config(["--config", str(shipped), "--metadata", "s3://b/m", "--out", "s3://b/s"])
    assert (config.image_size, config.keep_columns, config.threads, config.distributor) == (512, ("uid",), 128, "ray")
    with pytest.raises(RecapError, match="give --metadata"):
        build_config(["--metadata", "m"])
    config_file.write_text(json.dumps({"thread": 3}))
    with pytest.raises(RecapError, match=r"unknown config field\(s\) \['thread'\]"):
        build_config(["--config", str(config_file), "--metadata", "m", "--out", "o"])


def test_distributor_settings_are_checked(tmp_path, capsys):
    from recap.cli import main

    with pytest.raises(RecapError, match="distributor must be one of multiprocessing, ray"):
        DownloadConfig(metadata="m", out="o", distributor="pyspark")
    with pytest.raises(RecapError, match="add --distributor ray"):
        DownloadConfig(metadata="m", out="o", ray_address="127.0.0.1:6379")
    assert DownloadConfig(metadata="m", out="o").distributor == "multiprocessing"  # the default is unchanged
    probe = "import sys, recap.ingest.download, recap.cli; assert 'ray' not in sys.modules"
    assert subprocess.run([str(BIN / "python"), "-c", probe], capture_output=True).returncode == 0, "Ray imported"
    arguments = ["download", "--metadata", str(tmp_path), "--out", str(tmp_path / "o"), "--ray-address", "h:6379"]
    assert main(arguments) == 2
    assert "recap download: error: ray-address is for the ray distributor" in capsys.readouterr().err


def test_rows_in_no_finished_shard_are_an_error(tmp_path, monkeypatch):
    """img2dataset's ray distributor drops a shard whose task failed; the run must not pass for complete."""
    import img2dataset

    folder = tmp_path / "meta"
    folder.mkdir()
    urls = [f"http://x.test/{n}.jpg" for n in range(3)]
    pq.write_table(pa.table({"uid": ["a", "b", "c"], "url": urls, "text": ["t"] * 3}), folder / "0.parquet")

    def one_shard_of_two(output_folder, **_options):
        stats = {"count": 2, "successes": 2, "failed_to_download": 0, "failed_to_resize": 0, "status_dict": {}}
        (Path(output_folder) / "00000_stats.json").write_text(json.dumps(stats))

    monkeypatch.setattr(img2dataset, "download", one_shard_of_two)
    out = tmp_path / "shards"
    with pytest.raises(RecapError, match="1 of 3 metadata rows are in no finished shard.*rerun the same command"):
        download(DownloadConfig(metadata=str(folder), out=str(out)))
    assert json.loads((out / SUMMARY_FILE).read_text())["count"] == 2

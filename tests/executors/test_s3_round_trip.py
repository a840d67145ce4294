"""Shards from and tables to an S3-compatible store (a moto server on 127.0.0.1), through the same job code."""

import json

import pyarrow.parquet as pq
import pytest
import s3fs
from moto.server import ThreadedMotoServer

from recap.jobs.caption import CaptionJobConfig, run_caption_job


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on an ephemeral port; yields fsspec storage options that point at it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": f"http://{host}:{port}", "region_name": "eu-west-1"},
    }
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("recap-test")
    yield fs, options
    server.stop()


def test_shards_in_and_tables_out_through_s3(ray_cluster, job_shards, s3):
    fs, options = s3
    tars = sorted(job_shards.glob("*.tar"))
    for tar in tars:
        fs.put_file(str(tar), f"recap-test/shards/{tar.name}")
    fs.invalidate_cache()
    config = CaptionJobConfig(
        input=["s3://recap-test/shards/*.tar"],
        output="s3://recap-test/captions",
        storage_options=options,
        cpus_per_actor=0.5,
        captioner={"batch_size": 8},
    )
    summary = run_caption_job(config, progress=False)
    assert summary["shards_written"] == len(tars)

    fs.invalidate_cache()
    tables = sorted(fs.glob("recap-test/captions/*.parquet"))
    assert [t.rsplit("/", 1)[1] for t in tables] == [f"{tar.stem}.parquet" for tar in tars]
    assert len(fs.glob("recap-test/captions/_done/*.json")) == len(tars)
    assert not fs.glob("recap-test/captions/.*")  # no temporaries left behind
    rows = []
    for table in tables:
        with fs.open(table, "rb") as handle:
            rows.extend(pq.read_table(handle).to_pylist())
    assert len(rows) == summary["rows"] == 60
    assert {row["source_shard"] for row in rows} == {f"s3://recap-test/shards/{tar.name}" for tar in tars}
    assert sum(row["status"] == "ok" for row in rows) == summary["rows_ok"] > 0
    with fs.open(f"recap-test/captions/_manifests/{summary['run_id']}.json") as handle:
        assert json.load(handle)["status"] == "complete"

    again = run_caption_job(CaptionJobConfig(**{**config.__dict__, "resume": True}), progress=False)
    assert again["shards_skipped"] == len(tars) and again["shards_written"] == 0

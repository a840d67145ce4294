"""The world's local web server answers each URL as the truth table says (plain urllib, no img2dataset)."""

import hashlib
import urllib.error
import urllib.request

import pyarrow.parquet as pq
import pytest

from recap.ingest.world_server import WorldServer, http_proxy
from recap.world.generate import load_truth


def _fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_serves_each_failure_mode(small_world):
    truth = {row["serve"]: row for row in load_truth(small_world, "web").to_pylist()}
    metadata = pq.read_table(sorted((small_world / "web" / "metadata").glob("*.parquet"))).to_pylist()
    by_uid = {row["uid"]: row for row in metadata}
    with WorldServer(small_world, stall_seconds=3) as server, http_proxy(server.proxy_url):
        ok = by_uid[truth["ok"]["uid"]]
        status, content_type, body = _fetch(ok["url"])
        assert status == 200 and content_type.startswith("image/")
        assert hashlib.sha256(body).hexdigest() == ok["sha256"]

        with pytest.raises(urllib.error.HTTPError) as error:
            _fetch(by_uid[truth["http_404"]["uid"]]["url"])
        assert error.value.code == 404

        if "truncated" in truth:
            row = by_uid[truth["truncated"]["uid"]]
            _, _, body = _fetch(row["url"])
            assert hashlib.sha256(body).hexdigest() != row["sha256"] and len(body) > 0

        if "not_an_image" in truth:
            _, content_type, body = _fetch(by_uid[truth["not_an_image"]["uid"]]["url"])
            assert content_type == "text/html" and body.startswith(b"<!DOCTYPE html>")

        if "timeout" in truth:
            with pytest.raises((TimeoutError, urllib.error.URLError)):
                _fetch(by_uid[truth["timeout"]["uid"]]["url"], timeout=0.5)
        assert server.requests >= 3


def test_proxy_settings_are_restored(small_world, monkeypatch):
    monkeypatch.setenv("no_proxy", "example.org")
    monkeypatch.delenv("http_proxy", raising=False)
    import os

    with http_proxy("http://127.0.0.1:9"):
        assert os.environ["http_proxy"] == "http://127.0.0.1:9" and "no_proxy" not in os.environ
    assert os.environ["no_proxy"] == "example.org" and "http_proxy" not in os.environ

"""Download rate of img2dataset's two distributors on the same world split, measured in one run.

    python benchmarks/download_distributors.py [--images 2000] [--samples-per-shard 250] [--repeats 2]

Both download the world's web split (DataComp-shaped metadata, URLs served on 127.0.0.1 by the world server,
with its dead links, stalls and corrupt bodies) with the same img2dataset settings into fresh folders:
`multiprocessing` with one process per CPU, and `ray` on a Ray head node started beforehand with one CPU per
shard task (img2dataset asks one each), as a cluster would be. Runs alternate (multiprocessing, ray, ...);
rates are URLs per second of wall time of the whole `download_world` call (connecting to Ray included, the
cluster's own start not), and, from img2dataset's per-shard stats, URLs per second from the first shard's start
to the last shard's end. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_head(cpus: int, log: Path) -> tuple[subprocess.Popen, str]:
    """`ray start --head --block` in its own session (stopped by signalling that session, never `ray stop`, which
    would stop every Ray on the machine); returns the process and the address once a driver can connect."""
    port = _free_port()
    process = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats", f"--port={port}"]
        + [f"--num-cpus={cpus}", "--include-dashboard=false", f"--ray-client-server-port={_free_port()}"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    probe = f"import ray; ray.init(address={address!r}, log_to_driver=False); print(ray.cluster_resources()['CPU'])"
    for _ in range(120):
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited; see {log}")
        if subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60).returncode == 0:
            return process, address
        time.sleep(1)
    raise TimeoutError(f"the Ray head did not come up; see {log}")


def stop_head(process: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=30)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def shard_span(out: Path) -> float:
    """Seconds from the first shard's start to the last shard's end, from img2dataset's `*_stats.json`."""
    stats = [json.loads(path.read_text()) for path in out.glob("*_stats.json")]
    return max(s["end_time"] for s in stats) - min(s["start_time"] for s in stats)


def main() -> None:
    from recap.ingest.download import DownloadConfig, download_world, world_settings
    from recap.world.generate import WorldConfig, generate_world

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000, help="URLs in the web split")
    parser.add_argument("--samples-per-shard", type=int, default=250)
    parser.add_argument("--threads", type=int, default=32, help="download threads per process / shard task")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    cpus = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="recap-download-bench-"))
    world = work / "world"
    generate_world(WorldConfig(seed=11, size=args.images, sft_size=1, eval_size=1), world, progress=False)
    settings = {**world_settings(world, "web"), "samples_per_shard": args.samples_per_shard, "threads": args.threads}
    shards = -(-args.images // args.samples_per_shard)
    print(f"machine: {cpus} CPUs; load average {os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{args.images} URLs in about {shards} shards of {args.samples_per_shard}; {args.threads} threads each")

    head, address = start_head(cpus, work / "ray-head.log")
    results: dict[str, list[tuple[float, float, float]]] = {"multiprocessing": [], "ray": []}
    try:
        for repeat in range(args.repeats):
            for distributor in results:
                out = work / f"{distributor}-{repeat}"
                options = {"processes": cpus} if distributor == "multiprocessing" else {"ray_address": address}
                config = DownloadConfig(out=str(out), distributor=distributor, **settings, **options)
                started = time.perf_counter()
                summary = download_world(world, "web", config)
                wall = time.perf_counter() - started
                assert summary.count == args.images, (distributor, summary.count)
                results[distributor].append((wall, shard_span(out), summary.success_rate))
    finally:
        stop_head(head)
        shutil.rmtree(work, ignore_errors=True)

    print("\n| distributor | runs | wall s (median) | URLs/s, wall (each run) | URLs/s, shards' span | success |")
    print("|---|---|---|---|---|---|")
    rates = {}
    for distributor, runs in results.items():
        wall, span = median(r[0] for r in runs), median(r[1] for r in runs)
        rates[distributor] = (args.images / wall, args.images / span)
        each = ", ".join(f"{args.images / r[0]:.0f}" for r in runs)
        print(
            f"| {distributor} | {len(runs)} | {wall:.1f} | {rates[distributor][0]:.0f} ({each}) | "
            f"{rates[distributor][1]:.0f} | {runs[0][2]:.1%} |"
        )
    ratio = [rates["ray"][i] / rates["multiprocessing"][i] for i in range(2)]
    print(f"\nratio ray / multiprocessing: {ratio[0]:.2f} (wall), {ratio[1]:.2f} (shard span)")


if __name__ == "__main__":
    main()

"""Recaption-job efficiency and memory on this machine (local Ray, the shipped tiny captioner, CPU).

    python benchmarks/pipeline_efficiency.py [--images 1000] [--batch-size 16] [--growth 10]

efficiency = end-to-end images/s of the Ray job / images/s of the bare captioner on the same images, model,
batch size and thread count. It is printed for both input sizes: the job's fixed costs (Ray Data planning,
actor start, model load) weigh on the small run and wash out on the large one. Peak memory is the summed RSS
of the driver and every process it started (Ray's raylet and workers included), sampled every 0.2 s, for
the input and for `--growth` times the input.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _tree_rss_bytes(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss[int(entry)] = int(line.split()[1]) * 1024
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class PeakMemory:
    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, _tree_rss_bytes(os.getpid()))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main() -> None:
    import ray
    import torch
    from PIL import Image

    from recap.caption_job import CaptionJobConfig, run_caption_job
    from recap.models.assets import shipped_captioner
    from recap.models.captioner import CaptionerConfig, load_captioner
    from recap.stages.decode import decode_image
    from recap.stages.webdataset_reader import list_shards, read_shard
    from recap.world.generate import WorldConfig, generate_world
    from recap.world.shards import write_webdataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--growth", type=int, default=10)
    parser.add_argument("--cpus-per-actor", type=float, default=1.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="recap-bench-"))
    generate_world(WorldConfig(seed=5, size=args.images, sft_size=1, eval_size=1), work / "world", progress=False)
    write_webdataset(work / "world", "web", work / "small", samples_per_shard=64)
    write_webdataset(work / "world", "web", work / "large", samples_per_shard=64, repeat=args.growth)
    model = str(shipped_captioner())
    threads = max(1, int(args.cpus_per_actor))
    print(f"machine: {os.cpu_count()} CPUs; torch {torch.__version__}; captioner {model}")
    print(f"images {args.images} (x{args.growth} for memory), batch {args.batch_size}, actor threads {threads}")

    # Bare captioner: the same decoded images, model, batch size and threads, no pipeline around it.
    images = []
    for shard in list_shards(str(work / "small")):
        for batch in read_shard(shard):
            images += [Image.fromarray(decode_image(data, 64, 10**9)) for data in batch["image"]]
    torch.set_num_threads(threads)
    captioner = load_captioner(CaptionerConfig(model=model, batch_size=args.batch_size, device="cpu"))
    captioner.caption(images[: args.batch_size])
    started = time.perf_counter()
    captioner.caption(images)
    bare = len(images) / (time.perf_counter() - started)
    del captioner
    torch.set_num_threads(os.cpu_count() or 1)

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    results = {}
    for name in ("small", "large"):
        config = CaptionJobConfig(
            input=[str(work / name)],
            output=str(work / f"out-{name}"),
            executor="ray",
            batch_size=args.batch_size,
            cpus_per_actor=args.cpus_per_actor,
            decode_cpus=0.5,
        )
        with PeakMemory() as memory:
            summary = run_caption_job(config, progress=False)
        results[name] = (summary, memory.peak)
    ray.shutdown()
    small, large = results["small"], results["large"]
    print(f"bare captioner: {bare:.1f} images/s")
    for summary, _ in (small, large):
        print(
            f"pipeline (Ray, {summary['rows']} images): {summary['images_per_s']:.1f} images/s end to end "
            f"({summary['seconds']:.1f} s) -> efficiency {summary['images_per_s'] / bare:.2f}"
        )
    extra_rows = large[0]["rows"] - small[0]["rows"]
    extra_seconds = large[0]["seconds"] - small[0]["seconds"]
    fixed = small[0]["seconds"] - small[0]["rows"] / bare
    print(
        f"marginal rate (the {extra_rows} extra images): {extra_rows / extra_seconds:.1f} images/s -> efficiency "
        f"{extra_rows / extra_seconds / bare:.2f}; fixed start-up cost about {fixed:.1f} s"
    )
    print(
        f"peak memory: {small[1] / 2**20:.0f} MiB for {small[0]['rows']} images, {large[1] / 2**20:.0f} MiB for "
        f"{large[0]['rows']} images -> ratio {large[1] / small[1]:.2f} at {args.growth}x the input"
    )


if __name__ == "__main__":
    main()

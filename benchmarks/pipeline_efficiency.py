"""Recaption-job efficiency and memory on this machine (local Ray, the shipped tiny captioner, CPU).

    python benchmarks/pipeline_efficiency.py [--images 1000] [--batch-size 16] [--growth 10]

efficiency = end-to-end images/s of the Ray job / images/s of the bare captioner on the same images, model,
batch size and thread count. The bare captioner runs in its own process (a 1-thread torch, like the job's
actor) and captions all of the job's decoded images before and after each job (bare, job, bare, job, bare for
`--repeats 2`); a job is compared with the mean of the bare runs on either side of it, as this machine's bare
rate drifts between about 55 and 87 images/s from one minute to the next. Both input sizes are printed: the
job's fixed start-up (starting the actor process, importing torch and transformers there, loading the model)
weighs on the small run and washes out on the large one. The job's own `stage_seconds` split the rest: the
captioner's busy fraction (caption seconds / wall) and its rate inside the job.

Peak memory is the summed RSS of the driver and every process it started (Ray's raylet and workers included;
the bare captioner's process excluded), sampled every 0.2 s, for the input and for `--growth` times the input.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path
from statistics import median

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _tree_rss_bytes(root: int, exclude: set[int]) -> int:
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
        if pid in exclude:
            continue
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class PeakMemory:
    """Peak summed RSS of this process and its descendants, leaving out the processes in `exclude`."""

    def __init__(self, exclude: set[int] = frozenset()) -> None:
        self.exclude = set(exclude)

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, _tree_rss_bytes(os.getpid(), self.exclude))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _bare_captioner(connection, model: str, batch_size: int, threads: int) -> None:
    """Child process: given a shard folder, decode its images (once, at the job's size) and caption all of them;
    reply images/s."""
    import torch
    from PIL import Image

    from recap.jobs.caption import captioner_image_size
    from recap.models.captioner import CaptionerConfig, load_captioner
    from recap.stages.decode import decode_image
    from recap.stages.webdataset_reader import list_shards, read_shard

    torch.set_num_threads(threads)
    captioner = load_captioner(CaptionerConfig(model=model, batch_size=batch_size, device="cpu"))
    side = captioner_image_size(model)
    decoded: dict[str, list] = {}
    while (folder := connection.recv()) is not None:
        if folder not in decoded:
            decoded[folder] = [
                Image.fromarray(decode_image(data, side, 10**9))
                for shard in list_shards(folder)
                for batch in read_shard(shard)
                for data in batch["image"]
            ]
            captioner.caption(decoded[folder][:batch_size])  # warm-up
        images = decoded[folder]
        started = time.perf_counter()
        captioner.caption(images)
        connection.send(len(images) / (time.perf_counter() - started))


def main() -> None:
    import ray

    from recap.jobs.caption import CaptionJobConfig, run_caption_job
    from recap.models.assets import shipped_captioner
    from recap.world.generate import WorldConfig, generate_world
    from recap.world.shards import write_webdataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--growth", type=int, default=10)
    parser.add_argument("--cpus-per-actor", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=2, help="jobs per input size, each between two bare runs")
    parser.add_argument("--decode-cpus", type=float, default=1.0, help="CPUs per read and per decode task")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="recap-bench-"))
    generate_world(WorldConfig(seed=5, size=args.images, sft_size=1, eval_size=1), work / "world", progress=False)
    write_webdataset(work / "world", "web", work / "small", samples_per_shard=64)
    write_webdataset(work / "world", "web", work / "large", samples_per_shard=64, repeat=args.growth)
    model = str(shipped_captioner())
    threads = max(1, int(args.cpus_per_actor))
    print(f"machine: {os.cpu_count()} CPUs; captioner {model}")
    print(
        f"images {args.images} (x{args.growth} for the large run), batch {args.batch_size}, actor threads {threads}, "
        f"{args.decode_cpus:g} CPU per read/decode task"
    )

    # The bare captioner: the job's own images decoded once, same model, batch size and threads, no pipeline
    # around it, in a process of its own that stays out of the memory figures.
    connection, child_end = multiprocessing.get_context("spawn").Pipe()
    bare = multiprocessing.get_context("spawn").Process(
        target=_bare_captioner, args=(child_end, model, args.batch_size, threads), daemon=True
    )
    bare.start()

    def bare_rate(folder: Path) -> float:
        connection.send(str(folder))
        return connection.recv()

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    peaks, efficiencies = {}, {}
    for name in ("small", "large"):
        # bare, job, bare, job, ..., bare: each job is compared with the bare runs on either side of it.
        bare_rates = [bare_rate(work / name)]
        for repeat in range(args.repeats):
            config = CaptionJobConfig(
                input=[str(work / name)],
                output=str(work / f"out-{name}-{repeat}"),
                executor="ray",
                captioner={"batch_size": args.batch_size},
                cpus_per_actor=args.cpus_per_actor,
                decode_cpus=args.decode_cpus,
            )
            with PeakMemory(exclude={bare.pid}) as memory:
                summary = run_caption_job(config, progress=False)
            bare_rates.append(bare_rate(work / name))
            peaks[name] = max(peaks.get(name, 0), memory.peak)
            reference = (bare_rates[-2] + bare_rates[-1]) / 2
            efficiencies.setdefault(name, []).append(summary["images_per_s"] / reference)
            caption_s, seconds, rows = summary["stage_seconds"]["caption"], summary["seconds"], summary["rows"]
            print(
                f"{name} #{repeat + 1}: {rows} images in {seconds:.1f} s = {summary['images_per_s']:.1f} images/s; "
                f"bare captioner on the same images {bare_rates[-2]:.1f} before, {bare_rates[-1]:.1f} after -> "
                f"efficiency {efficiencies[name][-1]:.2f}\n    captioner busy {caption_s:.1f} s of {seconds:.1f} s "
                f"({caption_s / seconds:.2f}), {rows / caption_s:.1f} images/s while busy "
                f"({rows / caption_s / reference:.2f} of bare); not captioning {seconds - caption_s:.1f} s "
                "(start-up, tail)",
                flush=True,
            )
    ray.shutdown()
    connection.send(None)
    bare.join(timeout=30)
    for name, values in efficiencies.items():
        print(
            f"efficiency, {name} input: " + ", ".join(f"{v:.2f}" for v in values) + f" (median {median(values):.2f})"
        )
    print(
        f"peak memory: {peaks['small'] / 2**20:.0f} MiB for {args.images} images, {peaks['large'] / 2**20:.0f} MiB "
        f"for {args.images * args.growth} images -> ratio {peaks['large'] / peaks['small']:.2f} at {args.growth}x "
        "the input"
    )


if __name__ == "__main__":
    main()

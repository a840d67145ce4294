"""How much work on one CPU slows the captioner on another: the noise floor of pipeline_efficiency.py.

    python benchmarks/cpu_interference.py [--images 320] [--rounds 3]

The bare captioner (shipped tiny model, 1 torch thread, batch 16) is pinned to CPU 0 and timed alone, then
with a pure-Python busy loop pinned to CPU 1 (no memory traffic, no shared data). On a machine whose CPUs are
independent cores the two rates match; where they share a physical core (SMT siblings of a VM) or a power
budget, the captioner slows down whenever anything else runs, and a pipeline (decode tasks, driver, Ray
daemons on the other CPU) cannot reach the bare captioner's rate. Linux only (uses sched_setaffinity).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _spin(stop, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    total = 0
    while not stop.is_set():
        for value in range(100_000):
            total += value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs at least 2 CPUs")
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})

    import torch
    from PIL import Image

    from recap.models.assets import shipped_captioner
    from recap.models.captioner import CaptionerConfig, load_captioner
    from recap.world.generate import WorldConfig, make_sample

    torch.set_num_threads(1)
    world = WorldConfig(seed=123, size=args.images)
    images = [
        Image.open(io.BytesIO(make_sample(world, "eval", i).image_bytes)).convert("RGB") for i in range(args.images)
    ]
    captioner = load_captioner(CaptionerConfig(model=str(shipped_captioner()), batch_size=16, device="cpu"))
    captioner.caption(images[:16])

    def rate() -> float:
        started = time.perf_counter()
        captioner.caption(images)
        return len(images) / (time.perf_counter() - started)

    context = multiprocessing.get_context("spawn")
    print(f"captioner on CPU {cpus[0]}, busy loop on CPU {cpus[1]}; {args.images} images per timing")
    ratios = []
    for round_ in range(args.rounds):
        alone = rate()
        stop = context.Event()
        spinner = context.Process(target=_spin, args=(stop, cpus[1]), daemon=True)
        spinner.start()
        time.sleep(0.5)
        loaded = rate()
        stop.set()
        spinner.join()
        ratios.append(loaded / alone)
        print(f"round {round_ + 1}: alone {alone:.1f} images/s, other CPU busy {loaded:.1f} ({ratios[-1]:.2f})")
    print(f"mean ratio {sum(ratios) / len(ratios):.2f} (1.00: the CPUs do not interfere)")


if __name__ == "__main__":
    main()

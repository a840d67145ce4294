"""Images per second of the one-step generator against its teacher (20 DDIM steps with classifier-free guidance),
on the same prompts, batch size and thread count, repeated and interleaved so that a busy moment hurts both.

    python benchmarks/one_step_speed.py --prompts 512 --repeats 5

Prints each model's images/s (min / median / max over the repeats) and the ratio of the medians. Time it on a
quiet machine: anything else on the 2 cores skews it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", help="default: the shipped Recap-DiT (p = 0)")
    parser.add_argument("--one-step", help="default: the shipped one-step generator")
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)

    import torch

    from recap.models.assets import shipped_one_step, shipped_t2i
    from recap.models.t2i import load_t2i

    if args.threads:
        torch.set_num_threads(args.threads)
    models = {
        "teacher": load_t2i(args.teacher or shipped_t2i()),
        "one step": load_t2i(args.one_step or shipped_one_step()),
    }
    sentences = ["A small red heart is in the top left.", "A large blue circle is in the bottom right."]
    prompts = [f"The image shows one object on a white background. {sentences[i % 2]}" for i in range(args.prompts)]
    for model in models.values():  # warm up: first calls allocate
        model.generate(prompts[: args.batch_size], batch_size=args.batch_size)
    rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            started = time.perf_counter()
            model.generate(prompts, batch_size=args.batch_size)
            rates[name].append(len(prompts) / (time.perf_counter() - started))
    for name, values in rates.items():
        calls = models[name].network_calls(20)
        print(
            f"{name:>9}: {min(values):7.1f} / {statistics.median(values):7.1f} / {max(values):7.1f} images/s "
            f"(min / median / max of {args.repeats}), {calls} network calls per image"
        )
    ratio = statistics.median(rates["one step"]) / statistics.median(rates["teacher"])
    print(f"one step / teacher, medians: {ratio:.1f}x ({len(prompts)} prompts, batch {args.batch_size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

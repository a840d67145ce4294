"""Captioner images/s on this machine for batch sizes 1, 8 and 32, as ratios to batch 1.

    python benchmarks/captioner_throughput.py [--model PATH] [--images 64] [--max-new-tokens 128]

Uses the shipped tiny captioner by default and images of the embedded world rendered in memory. The same
images and model serve every batch size; one warm-up batch runs first.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import torch
    from PIL import Image

    from recap.models.assets import shipped_captioner
    from recap.models.captioner import CaptionerConfig, load_captioner
    from recap.world.generate import WorldConfig, make_sample

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="HF LLaVA folder (default: the shipped tiny captioner)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    args = parser.parse_args()

    model = args.model or str(shipped_captioner())
    world = WorldConfig(seed=123, size=args.images)
    images = [Image.open(io.BytesIO(make_sample(world, "eval", i).image_bytes)) for i in range(args.images)]
    print(
        f"model {model}\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu"
    )
    rates = {}
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        captioner = load_captioner(
            CaptionerConfig(model=model, batch_size=batch_size, max_new_tokens=args.max_new_tokens, device="cpu")
        )
        captioner.caption(images[:batch_size])  # warm-up
        started = time.perf_counter()
        results = captioner.caption(images)
        elapsed = time.perf_counter() - started
        rates[batch_size] = len(images) / elapsed
        tokens = sum(r.output_tokens for r in results)
        print(
            f"batch {batch_size:>3}: {rates[batch_size]:7.1f} images/s  {tokens / elapsed:8.0f} output tokens/s  "
            f"ratio to batch 1: {rates[batch_size] / rates[min(rates)]:.2f}"
        )


if __name__ == "__main__":
    main()

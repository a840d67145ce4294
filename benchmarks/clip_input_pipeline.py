"""Does reading and decoding shards stall CLIP training? train-clip's loop, images/s, reading its samples from
webdataset shards (the job's reader, decode stage and caption mixing, as `recap train-clip` does) against the
same loop fed the same samples already decoded in memory. Run it on a quiet machine.

    python benchmarks/clip_input_pipeline.py --images 4000 --steps 150
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


class InMemory:
    """The samples of one pass of the shards, decoded once and served from memory in the same order."""

    def __init__(self, samples: list, shards: list) -> None:
        self.samples, self.shards, self.counts = samples, shards, Counter()

    def epoch(self, epoch: int):
        for sample in self.samples:
            self.counts["in_memory"] += 1
            yield sample


def main() -> None:
    from recap.training.clip_data import CaptionMix, read_captions, world_training_data
    from recap.training.clip_training import ClipTrainer, ClipTrainingConfig
    from recap.world.generate import WorldConfig, generate_world

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4000, help="world images (one epoch of shards)")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="recap-clip-bench-"))
    generate_world(WorldConfig(seed=11, size=args.images, sft_size=1, eval_size=1), work / "world", progress=False)
    shards, table = world_training_data(work / "world", "web", work / "data", image_size=64)

    def config(name: str) -> ClipTrainingConfig:
        return ClipTrainingConfig(
            train=str(shards),
            captions=str(table),
            out=str(work / name),
            steps=args.steps,
            batch_size=args.batch_size,
            warmup_steps=10,
            checkpoint_every=10**6,
            p_original=0.5,
        )

    from recap.stages.webdataset_reader import list_shards

    captions = read_captions(table)
    # one tokenizer, trained once and linked into every run, so that both loops tokenize alike
    tokenizer = ClipTrainer(config("tokenizer"), progress=False)._tokenizer_folder(captions)

    mix = CaptionMix(list_shards(str(shards)), captions, image_size=64, p_original=0.5, seed=0)
    held = list(mix.epoch(0))
    print(f"machine: {os.cpu_count()} CPUs; {len(held)} samples in {len(mix.shards)} shards, batch {args.batch_size}")
    rates: dict[str, list[float]] = {"shards": [], "memory": []}
    for repeat in range(args.repeats):
        for name in ("shards", "memory"):
            trainer = ClipTrainer(config(f"{name}-{repeat}"), progress=False)
            (trainer.out / "tokenizer").symlink_to(tokenizer.resolve())
            samples = InMemory(held, mix.shards) if name == "memory" else None
            result = trainer.train_worker(rank=0, world_size=1, samples=samples)
            rates[name].append(result["images_per_s"])
            print(f"run {repeat + 1}, {name}: {result['images_per_s']:.1f} images/s over {result['steps']} steps")
    best = {name: max(values) for name, values in rates.items()}
    ratio = best["shards"] / best["memory"]
    print(f"best images/s: shards {best['shards']:.1f}, memory {best['memory']:.1f} -> ratio {ratio:.2f}")


if __name__ == "__main__":
    main()

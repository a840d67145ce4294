"""Read webdataset tars with Ray Data: `ray.data.read_webdataset` against recap's own datasource.

    python benchmarks/reader_comparison.py [--images 4000] [--samples-per-shard 500] [--repeats 3]

Both read the same local tars on the same local Ray into rows that keep the image bytes undecoded (decoding
is a separate CPU stage in the job), and the rows are counted on the driver. Best of `--repeats` runs each.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def main() -> None:
    import ray

    from recap.executors.ray_executor import _unit_datasource
    from recap.stages.webdataset_reader import WebDatasetSource
    from recap.world.generate import WorldConfig, generate_world
    from recap.world.shards import write_webdataset

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--samples-per-shard", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="recap-readers-"))
    world = WorldConfig(seed=9, size=min(args.images, 1000), sft_size=1, eval_size=1)
    generate_world(world, work / "world", progress=False)
    repeat = max(1, args.images // world.size)
    count = write_webdataset(
        work / "world", "web", work / "tars", samples_per_shard=args.samples_per_shard, repeat=repeat
    )
    source = WebDatasetSource(inputs=[str(work / "tars")])
    shards = source.units()
    paths = [shard.uri for shard in shards]
    size = sum(os.path.getsize(p) for p in paths)
    print(f"machine: {os.cpu_count()} CPUs; ray {ray.__version__}")
    print(f"{count} samples in {len(paths)} tars ({size / 2**20:.1f} MiB)")

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    def ours():
        return ray.data.read_datasource(_unit_datasource(source, shards), override_num_blocks=len(shards))

    def theirs():
        return ray.data.read_webdataset(paths, decoder=None, override_num_blocks=len(paths))

    rates = {}
    for name, make in (("read_webdataset(decoder=None)", theirs), ("recap datasource", ours)):
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            rows = sum(len(next(iter(b.values()))) for b in make().iter_batches(batch_size=None, batch_format="numpy"))
            best = min(best, time.perf_counter() - started)
        assert rows == count, (name, rows, count)
        rates[name] = rows / best
        print(f"{name:>30}: {rates[name]:8.0f} samples/s  ({best:.2f} s, {size / 2**20 / best:.0f} MiB/s)")
    ray.shutdown()
    baseline = rates["read_webdataset(decoder=None)"]
    print(f"ratio recap / read_webdataset: {rates['recap datasource'] / baseline:.2f}")


if __name__ == "__main__":
    main()

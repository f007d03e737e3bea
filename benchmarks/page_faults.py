"""What the allocator costs a torch training step: images/s, minor page faults and system time per
image of the project's plain training loop, in this process's allocator setting.

    python -m benchmarks.page_faults --batch-size 1024 --channels-last
    FMNIST_MALLOC=default python -m benchmarks.page_faults --batch-size 1024 --channels-last

The first runs as `fmnist train` does (`fmnist.malloc`: glibc keeps freed memory); the second
leaves glibc as it is. docs/speed.md ("Where torch's time went") has the figures. The step is
the engine's `fixed_batch_steps` (`fmnist.capabilities.Speed`; for `lightning`, the default,
the plain torch loop `torch_blocks.plain_loop.PlainTraining`) on the config's network, random
pixels and labels (the allocator does not care what the numbers are), one JSON line out.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from fmnist import engines
from fmnist.config import load_config, with_overrides


def measure(
    config_path: Path, batch_size: int, channels_last: bool, steps: int, warmup: int, engine: str = "lightning"
) -> dict:
    config = with_overrides(
        load_config(config_path), {"train.channels_last": channels_last, "train.precision": "float32"}
    )
    step, facts = (
        engines.engine(engine).capability("speed").fixed_batch_steps(config, batch_size, steps_per_epoch=warmup + steps)
    )
    for _ in range(warmup):
        step()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    images = steps * batch_size
    return {
        "batch_size": batch_size,
        "channels_last": channels_last,
        "threads": facts["threads"],
        "allocator": facts["allocator"],
        "images_per_s": images / seconds,
        "minor_faults_per_image": (after.ru_minflt - before.ru_minflt) / images,
        "system_us_per_image": (after.ru_stime - before.ru_stime) / images * 1e6,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("baseline"), help="a packaged config's name or a path")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--engine", choices=engines.names(), default="lightning", help="whose training step")
    args = parser.parse_args(argv)
    result = measure(args.config, args.batch_size, args.channels_last, args.steps, args.warmup, args.engine)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

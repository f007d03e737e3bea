"""`fmnist benchmark` and `fmnist benchmark-inference`: how fast each engine trains and infers,
and how long each takes to reach a test accuracy. The code lives here, beside the published
figures it writes (`benchmarks/results/`).

The parent (`orchestrate`) imports no framework: it plans the measurements from the one variant
table (`variants`), starts a worker process for each (`worker`, which has the variant's engine run
its step loop, `fmnist.capabilities.Speed.throughput`), and aggregates (`stats`) and reports (`report`) what they
write back. `time_to_accuracy` (with `time_to_accuracy_summary`) and `inference` are the other
two measurements; `peak` measures the device's GEMM peak for the MFU column; `page_faults` shows
what the allocator costs a torch step; `configs/overhead.yaml` is the tiny network on which
Lightning's fixed cost per step is measured (docs/speed.md).
"""

from pathlib import Path

#: The checkout this package belongs to: workers start there, and git is asked there which
#: revision was measured.
REPO = Path(__file__).resolve().parents[1]

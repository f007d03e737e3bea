"""`fmnist benchmark` and `fmnist benchmark-inference`: how fast each backend trains and infers,
and how long each takes to reach a test accuracy. The code lives here, beside the published
figures it writes (`benchmarks/results/`).

The parent (`orchestrate`) imports no framework: it plans the measurements from the one variant
table (`variants`), starts a worker process for each (`worker`, which hands it to
`torch_runner` or `keras_runner`), and aggregates (`stats`) and reports (`report`) what they
write back. `time_to_accuracy` and `inference` are the other two measurements.
"""

from pathlib import Path

#: The checkout this package belongs to: workers start there, and git is asked there which
#: revision was measured.
REPO = Path(__file__).resolve().parents[1]

"""How `fmnist compare` and the time-to-accuracy benchmark run their independent trainings:
one after another (serial), several at once on this machine (`--jobs N`), or as Ray tasks on a
cluster (`--executor ray`). Each training is a `Job`, a Python command in a fresh process, and
every executor runs it the same way (`fmnist.launch`), so a run is the same computation
wherever it ran; only the thread count changes its last bits (`fmnist.placement`).

Imports the core only, and Ray when asked for it; never a training framework.
"""

from executors.job import Job, JobResult
from executors.choose import ExecutorChoice, open_executor

__all__ = ["ExecutorChoice", "Job", "JobResult", "open_executor"]

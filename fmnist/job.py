"""The one entry point of every piece of work the project runs in a process of its own:

    python -m fmnist.job REQUEST OUT

REQUEST is a message (`fmnist.message`) {"job": KIND, ...}; KIND names a function declared in
the entry-point group `fmnist.jobs` (a training and its resume, an engine's capability calls, a
run's export, a benchmark measurement, a time-to-accuracy run: see pyproject.toml), called as
`function(request, out)`. OUT is the folder the job writes (a training's run directory); what
the function returns, if anything, is written there as the message `result.npz`. Every such
process is started by the one launcher (`fmnist.launch`), so this module is never started any
other way, and the parent never imports the job's module: a kind is a name, not code.

Errors end it as they end the command (`fmnist.errors.exit_code`): one the user can act on is
one line, `fmnist: error: ...`, exit 2, which a parent shows as it is; Ctrl-C exits 130; a bug
keeps its traceback in the job's log for the parent to show.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from fmnist.errors import USER_ERROR_EXIT, FmnistError, exit_code
from fmnist.message import read_message, write_message

#: Where job kinds are declared: name -> "module:function".
GROUP = "fmnist.jobs"
#: The request's and the result's file names, where a job's folders hold them.
REQUEST_FILE, RESULT_FILE = "request.npz", "result.npz"

Job = Callable[[dict[str, Any], Path], Any]


def request(kind: str, **fields: Any) -> dict[str, Any]:
    """A request for a job of `kind` (a name in `GROUP`)."""
    return {"job": kind, **fields}


def command(request_file: str | Path, out: str | Path) -> list[str]:
    """The launcher's argv (`fmnist.launch.start`) for the job whose request is `request_file`."""
    return ["-m", "fmnist.job", str(request_file), str(out)]


def kinds() -> dict[str, Any]:
    """Every declared job kind -> its entry point (loaded only when a job of that kind runs)."""
    return {point.name: point for point in entry_points(group=GROUP)}


def function(kind: str) -> Job:
    declared = kinds()
    if kind not in declared:
        known = ", ".join(sorted(declared)) or "none (is the project installed? pip install -e .)"
        raise FmnistError(f"no job kind {kind!r} is declared; declared: {known}")
    return declared[kind].load()


def run(request_file: Path, out: Path) -> int:
    """The job `request_file` asks for, its result (if any) written into `out`."""
    asked = read_message(request_file)
    work = function(asked["job"])
    out.mkdir(parents=True, exist_ok=True)
    result = work(asked, out)
    if result is not None:
        write_message(out / RESULT_FILE, result)
    return 0


def read_result(out: Path) -> Any:
    """What a finished job returned (None: it returned nothing, or never got to write it)."""
    path = Path(out) / RESULT_FILE
    return read_message(path) if path.is_file() else None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m fmnist.job REQUEST OUT", file=sys.stderr)
        return USER_ERROR_EXIT
    return exit_code(lambda: run(Path(args[0]), Path(args[1])), bug_traceback=True)


if __name__ == "__main__":
    sys.exit(main())

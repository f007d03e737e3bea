"""docs/api.md's examples, run as a reader would run them: each code block in a fresh process of
its own (so Keras and torch never share one), in an empty folder, on the real data."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "api.md"
FENCE = re.compile(r"^```(python|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str, str]]:
    """(id, language, code) of every python and bash block, the id naming its section."""
    text, found = PAGE.read_text(), []
    for match in FENCE.finditer(text):
        heading = re.findall(r"^## (.+)$", text[: match.start()], re.MULTILINE)
        section = re.sub(r"[^a-z0-9]+", "-", (heading[-1] if heading else "top").lower()).strip("-")
        found.append((f"{section}-{len(found)}", match.group(1), match.group(2)))
    return found


BLOCKS = blocks()


def test_the_page_has_its_examples_and_each_python_block_compiles():
    languages = [language for _, language, _ in BLOCKS]
    assert languages.count("python") >= 4 and "bash" in languages
    for name, language, code in BLOCKS:
        if language == "python":
            compile(code, f"{PAGE.name}:{name}", "exec")


@pytest.mark.slow
@pytest.mark.parametrize("language, code", [b[1:] for b in BLOCKS], ids=[b[0] for b in BLOCKS])
def test_the_example_runs(language, code, real_data_dir, tmp_path):
    """Python blocks as a script, bash blocks in bash with this environment's `python` first on
    the PATH; both with the data where FMNIST_DATA_DIR says."""
    env = {
        **os.environ,
        "FMNIST_DATA_DIR": str(real_data_dir),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MPLBACKEND": "Agg",
    }
    if language == "python":
        (tmp_path / "example.py").write_text(code)
        command = [sys.executable, "example.py"]
    else:
        command = ["bash", "-e", "-c", code]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"exit code {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"

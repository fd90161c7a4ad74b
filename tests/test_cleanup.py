"""Nothing left behind (issue 11 item 7): CI's virtual environment, notebook folders."""
import json
import os
import pathlib
import stat
import subprocess

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_ci_run_removes_its_virtual_environment_when_it_fails(tmp_path):
    stubs, scratch = tmp_path / "bin", tmp_path / "tmp"
    stubs.mkdir()
    scratch.mkdir()
    python3 = stubs / "python3"          # "python3 -m venv DIR" makes DIR, then fails
    python3.write_text('#!/bin/sh\nmkdir -p "$3" && echo big > "$3/weights"\nexit 1\n')
    python3.chmod(python3.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, TMPDIR=str(scratch),
               PATH=f"{stubs}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["bash", str(REPO / ".ci" / "run")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert os.listdir(scratch) == []


def test_notebooks_remove_their_temporary_folders():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        code = "\n".join("".join(cell["source"]) for cell in
                         json.loads(path.read_text())["cells"]
                         if cell["cell_type"] == "code")
        assert "mkdtemp(" not in code, f"{path.name}: use tempfile.TemporaryDirectory"
        if "TemporaryDirectory(" in code:
            assert ".cleanup()" in code, f"{path.name}: call cleanup() at the end"

"""A newcomer's trial: bad inputs through the real entry point ``python -m lars_ref``.

Each case must end with exit status 2 (3 for a diverged run), one line
``lars-ref: error: ...`` (no traceback), and leave every file that existed
before the call byte-identical. The cases run in a few parallel subprocesses.
"""
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys

import pytest
from support import file_snapshot

TINY = ["--dataset", "digits", "--model", "alexnet_bn", "--batch-size", "64",
        "--steps", "3", "--log-every", "2", "--no-progress", "--blas-threads", "1"]

# (name, argv with {sandbox} placeholders, expected exit status, text in stderr)
CASES = [
    ("unknown model", ["train", *TINY, "--model", "vgg99"], 2, "unknown model"),
    ("unknown dataset", ["train", *TINY, "--dataset", "imagenet22k"], 2,
     "unknown dataset"),
    ("unknown optimizer", ["train", *TINY, "--optimizer", "adamw"], 2,
     "unknown optimizer"),
    ("batch too large", ["train", *TINY, "--batch-size", "5000"], 2, "--batch-size"),
    ("micro-batch no divisor", ["train", *TINY, "--micro-batch", "10"], 2,
     "--micro-batch"),
    ("negative lr", ["train", *TINY, "--lr", "-1"], 2, "--lr"),
    ("zero lr", ["train", *TINY, "--lr", "0"], 2, "--lr"),
    ("momentum >= 1", ["train", *TINY, "--momentum", "1.5"], 2, "--momentum"),
    ("warm-up too long", ["train", *TINY, "--warmup-steps", "50"], 2, "warm-up"),
    ("missing data dir", ["train", *TINY, "--dataset", "mnist", "--data-dir",
                          "{sandbox}/nowhere"], 2, "--data-dir"),
    ("data dir is a file", ["train", *TINY, "--dataset", "mnist", "--data-dir",
                            "{sandbox}/notes.txt"], 2, "is a file"),
    ("out is a file", ["train", *TINY, "--out", "{sandbox}/notes.txt"], 2,
     "is a file"),
    ("out under a file", ["train", *TINY, "--out", "{sandbox}/notes.txt/run"], 2,
     "which is a file"),
    ("out unwritable", ["train", *TINY, "--out", "/proc/lars_ref_x"], 2,
     "cannot write into --out"),
    ("resume without checkpoint", ["train", *TINY, "--resume", "--out",
                                   "{sandbox}/empty"], 2, "no checkpoint"),
    ("resume and overwrite", ["train", *TINY, "--resume", "--overwrite", "--out",
                              "{sandbox}/run"], 2, "--overwrite"),
    ("existing run", ["train", *TINY, "--out", "{sandbox}/run"], 2, "--resume"),
    ("corrupt checkpoint", ["train", *TINY, "--resume", "--out", "{sandbox}/corrupt"],
     2, "corrupt"),
    ("incompatible resume", ["train", *TINY, "--resume", "--model", "alexnet",
                             "--out", "{sandbox}/run"], 2, "model: checkpoint has"),
    ("config missing", ["train", "--config", "{sandbox}/absent.json"], 2,
     "does not exist"),
    ("config not JSON", ["train", "--config", "{sandbox}/broken.json"], 2,
     "not valid JSON"),
    ("config a list", ["train", "--config", "{sandbox}/list.json"], 2,
     "JSON object"),
    ("config unknown key", ["train", "--config", "{sandbox}/unknown.json"], 2,
     "unknown config key"),
    ("width not a number", ["train", *TINY, "--width", "abc"], 2, "invalid width"),
    ("width zero", ["train", *TINY, "--width", "0"], 2, "--width"),
    ("width divided by 0", ["train", *TINY, "--width", "1/0"], 2, "invalid width"),
    ("dropout 1", ["train", *TINY, "--dropout", "1.0"], 2, "--dropout"),
    ("decay clock", ["train", *TINY, "--decay-clock", "relative"], 2,
     "invalid choice"),
    ("backend", ["train", *TINY, "--backend", "tpu"], 2, "invalid choice"),
    ("dtype", ["train", *TINY, "--dtype", "float16"], 2, "invalid choice"),
    ("init for resnet", ["train", *TINY, "--model", "resnet20", "--init", "paper"], 2,
     "--init"),
    ("zero epochs", ["train", *TINY, "--epochs", "0"], 2, "--epochs"),
    ("negative steps", ["train", *TINY, "--steps", "-3"], 2, "--steps"),
    ("checkpoint interval 0", ["train", *TINY, "--checkpoint-every-steps", "0"], 2,
     "--checkpoint-every-steps"),
    ("log every x", ["train", *TINY, "--log-every", "x"], 2, "invalid int"),
    ("missing flag value", ["train", *TINY, "--lr"], 2, "expected one argument"),
    ("diverging lr", ["train", *TINY, "--lr", "1e30"], 3, "training diverged"),
    ("demo out is a file", ["demo", "--quick", "--out", "{sandbox}/notes.txt"], 2,
     "is a file"),
    ("demo out unwritable", ["demo", "--quick", "--out", "/proc/lars_ref_x"], 2,
     "cannot write into --out"),
    ("demo seed", ["demo", "--seed", "one"], 2, "invalid int"),
    ("download unknown", ["download", "nosuch"], 2, "cannot download"),
    ("unknown command", ["no-such-command"], 2, "invalid choice"),
    ("no command", [], 2, "required"),
    ("vectors missing dir", ["vectors", "--verify", "{sandbox}/nowhere"], 2, ""),
    ("crosscheck bad adapter", ["crosscheck", "--adapter", "no_such_module_xyz:make"],
     2, "cannot load adapter"),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A folder holding a finished run, a corrupt checkpoint and some user files."""
    root = tmp_path_factory.mktemp("template")
    result = _lars_ref(["train", *TINY, "--out", str(root / "run")], cwd=root)
    assert result.returncode == 0, result.stderr
    (root / "corrupt").mkdir()
    (root / "corrupt" / "checkpoint.npz").write_bytes(b"not a zip file")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("the user's own notes\n")
    (root / "broken.json").write_text("{not json")
    (root / "list.json").write_text("[1, 2]")
    (root / "unknown.json").write_text(json.dumps({"learning_rate": 0.1}))
    return root


def _lars_ref(argv, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-m", "lars_ref", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _trial(case, template, workdir):
    name, argv, expected_status, expected_text = case
    sandbox = workdir / name.replace(" ", "_")
    shutil.copytree(template, sandbox)
    before = file_snapshot(sandbox)
    result = _lars_ref([arg.format(sandbox=sandbox) for arg in argv], cwd=sandbox)
    after = file_snapshot(sandbox)
    problems = []
    if result.returncode != expected_status:
        problems.append(f"exit {result.returncode}, expected {expected_status}")
    if "Traceback" in result.stderr:
        problems.append("a traceback")
    lines = result.stderr.strip().splitlines()
    if expected_status == 2 and (len(lines) != 1 or not
                                 lines[0].startswith("lars-ref: error: ")):
        problems.append("not one 'lars-ref: error:' line")
    if expected_text not in result.stderr:
        problems.append(f"no {expected_text!r} in stderr")
    changed = [path for path, data in before.items() if after.get(path) != data]
    if changed:
        problems.append(f"changed files {changed}")
    return name, problems, result.stderr.strip()[-300:]


def test_at_least_30_bad_inputs_end_in_one_line_and_change_nothing(template,
                                                                   tmp_path):
    assert len(CASES) >= 30
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        trials = list(pool.map(lambda case: _trial(case, template, tmp_path), CASES))
    failures = [f"{name}: {', '.join(problems)}\n    {stderr}"
                for name, problems, stderr in trials if problems]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("flags, expected", [
    (["--model", "vgg99"], "unknown model 'vgg99'"),
    (["--optimizer", "adamw"], "unknown optimizer 'adamw'"),
    (["--dataset", "imagenet22k"], "unknown dataset 'imagenet22k'"),
    (["--out", "/proc/lars_ref_x"], "cannot write into --out"),
])
def test_names_and_output_folder_are_checked_before_any_data_is_loaded(
        monkeypatch, capsys, tmp_path, flags, expected):
    from lars_ref import cli, train_setup

    def no_loading(*args, **kwargs):
        raise AssertionError("the data was loaded before the settings were checked")

    monkeypatch.setattr(train_setup, "load_dataset", no_loading)
    assert cli.main(["train", *TINY, "--out", str(tmp_path / "out"), *flags]) == 2
    assert expected in capsys.readouterr().err

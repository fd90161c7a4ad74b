"""The lars-ref command: help, one-line user errors (exit 2), a tiny train run."""
import json
import os
import subprocess
import sys

import pytest

from lars_ref import cli
from lars_ref.checkpoint import save_checkpoint

TINY = ["--dataset", "digits", "--model", "alexnet_bn", "--batch-size", "64",
        "--steps", "3", "--log-every", "2", "--no-progress", "--blas-threads", "1"]


def _run_module(*args, cwd=None):
    """Run ``python -m lars_ref ARGS`` in a subprocess; return the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "lars_ref", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def _user_error(capsys, argv):
    """Run ``main(argv)`` in-process; assert exit 2 and one stderr line; return it."""
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lars-ref: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_cli_help_explains_commands_with_an_example():
    result = _run_module("--help")
    assert result.returncode == 0
    for command in ("demo", "train", "download", "bench", "bench-optim", "vectors",
                    "crosscheck"):
        assert command in result.stdout
    assert "lars-ref demo" in result.stdout and "exit status" in result.stdout
    for command in ("demo", "train", "download"):
        sub = _run_module(command, "--help")
        assert sub.returncode == 0 and "example:" in sub.stdout, command


def test_cli_user_error_in_subprocess_has_no_traceback(tmp_path):
    result = _run_module("train", *TINY, "--model", "vgg99", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "unknown model 'vgg99'" in result.stderr


@pytest.mark.parametrize("flags, expected", [
    (["--model", "vgg99"], "unknown model 'vgg99'"),
    (["--dataset", "imagenet22k"], "unknown dataset 'imagenet22k'"),
    (["--optimizer", "adamw"], "unknown optimizer 'adamw'"),
    (["--batch-size", "5000"], "--batch-size 5000 is larger than the 1437 training"),
    (["--batch-size", "64", "--micro-batch", "10"], "--micro-batch 10 does not divide"),
    (["--lr", "-1"], "--lr must be a finite learning rate > 0"),
    (["--momentum", "1.5"], "momentum m must be in [0, 1), got --momentum=1.5"),
    (["--warmup-steps", "50"], "warm-up longer than the run"),
    (["--dataset", "mnist", "--data-dir", "/nonexistent/lars"], "does not exist"),
])
def test_cli_train_user_errors_exit_2_with_one_line(capsys, tmp_path, flags, expected):
    line = _user_error(capsys, ["train", *TINY, "--out", str(tmp_path), *flags])
    assert expected in line


def test_cli_config_file_errors(capsys, tmp_path):
    missing = tmp_path / "absent.json"
    assert "does not exist" in _user_error(capsys, ["train", "--config", str(missing)])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert "not valid JSON" in _user_error(capsys, ["train", "--config", str(broken)])
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"learning_rate": 0.1}))
    assert "unknown config key(s) learning_rate" in _user_error(
        capsys, ["train", "--config", str(unknown)])


def test_cli_resume_errors(capsys, tmp_path):
    out = str(tmp_path)
    line = _user_error(capsys, ["train", *TINY, "--out", out, "--resume"])
    assert "no checkpoint" in line
    with open(os.path.join(out, "checkpoint.npz"), "wb") as f:
        f.write(b"garbage, not a zip file")
    assert "corrupt" in _user_error(capsys, ["train", *TINY, "--out", out, "--resume"])
    assert "--overwrite" in _user_error(capsys, ["train", *TINY, "--out", out])
    save_checkpoint(os.path.join(out, "checkpoint.npz"), {"unrelated": 1})
    assert "not a lars-ref training checkpoint" in _user_error(
        capsys, ["train", *TINY, "--out", out, "--resume"])


def test_cli_train_end_to_end_then_resume_incompatible(capsys, tmp_path):
    out = str(tmp_path / "run")
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"optimizer": "lars", "lr": 1.0, "steps": 2}))
    status = cli.main(["train", "--config", str(config), *TINY, "--out", out])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "3 steps" in captured.out  # the flag --steps 3 overrides the file's 2
    for name in ("steps.jsonl", "steps.csv", "epochs.jsonl", "epochs.csv", "layers.csv",
                 "checkpoint.npz", "config.json"):
        assert os.path.isfile(os.path.join(out, name)), name
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["optimizer"] == "lars"
    line = _user_error(capsys, ["train", *TINY, "--out", out, "--resume",
                                "--model", "alexnet", "--optimizer", "lars"])
    assert "model: checkpoint has 'alexnet_bn', this run has 'alexnet'" in line


def test_cli_commands_come_from_their_modules_register(capsys):
    seen = {}
    module = type(sys)("lars_ref_fake_command")

    def register(commands):
        parser = commands.add_parser("fake", help="a command from another module")
        parser.add_argument("--size", type=int, default=3, help="(default: %(default)s)")
        parser.set_defaults(handler=lambda args: seen.setdefault("size", args.size) * 0)

    module.register = register
    sys.modules["lars_ref_fake_command"] = module
    try:
        parser = cli.build_parser(cli.COMMAND_MODULES + ("lars_ref_fake_command",))
        args = parser.parse_args(["fake", "--size", "5"])
        assert args.handler(args) == 0 and seen == {"size": 5}
        with pytest.raises(cli.CommandLineError, match="invalid int value"):
            parser.parse_args(["fake", "--size", "five"])
    finally:
        del sys.modules["lars_ref_fake_command"]


@pytest.mark.parametrize("argv", [
    ["bench", "--threads", "x"], ["bench-optim", "--dtype", "float16"],
    ["vectors"], ["crosscheck", "--tol", "1e-9"], ["train", "--lr"],
    ["demo", "--seed", "one"], ["download"], ["no-such-command"], [],
])
def test_cli_every_command_reports_bad_flags_on_one_line(capsys, argv):
    line = _user_error(capsys, argv)
    assert "--help" in line


def test_cli_cupy_backend_without_gpu_is_a_user_error(capsys, tmp_path):
    from lars_ref.backend import gpu_available
    if gpu_available():
        pytest.skip("a GPU is available here")
    line = _user_error(capsys, ["train", *TINY, "--out", str(tmp_path),
                                "--backend", "cupy"])
    assert "cupy" in line.lower()


def test_cli_download_user_errors(capsys, monkeypatch):
    monkeypatch.delenv("LARS_REF_DATA", raising=False)
    assert "cannot download 'digits'" in _user_error(capsys, ["download", "digits"])
    assert "LARS_REF_DATA" in _user_error(capsys, ["download", "mnist"])


def test_cli_diverged_run_exits_3_with_a_message(capsys, tmp_path):
    status = cli.main(["train", *TINY, "--out", str(tmp_path), "--lr", "1e30"])
    err = capsys.readouterr().err
    assert status == cli.EXIT_DIVERGED
    assert "training diverged at step" in err and "Traceback" not in err

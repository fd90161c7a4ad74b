"""One command tree, one source per setting (issue 9 items 3 and 4).

Every TrainConfig field has a flag whose help shows its default; lists of
choices are written in one module only; --width is a float multiplier of the
paper's widths.
"""
import argparse
import ast
import dataclasses
import pathlib

import numpy as np
import pytest

from lars_ref import cli
from lars_ref.checkpoint import load_checkpoint
from lars_ref.config import TrainConfig, flag_name

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "lars_ref"


def _train_parser():
    parser = cli.build_parser()
    commands = next(action for action in parser._actions
                    if isinstance(action, argparse._SubParsersAction))
    return commands.choices["train"]


def test_every_train_config_field_has_a_flag_with_its_default_in_the_help():
    train = _train_parser()
    flags = {option: action for action in train._actions
             for option in action.option_strings}
    for field in dataclasses.fields(TrainConfig):
        flag = flag_name(field.name)
        assert flag in flags, f"TrainConfig.{field.name} has no flag {flag}"
        assert flags[flag].dest == field.name
        assert "default" in flags[flag].help, flag
        if field.metadata.get("choices"):
            assert tuple(flags[flag].choices) == field.metadata["choices"], flag
    help_text = train.format_help()
    for flag in ("--decay-clock", "--dropout", "--checkpoint-every-steps",
                 "--checkpoint-every-minutes"):
        assert flag in help_text


def test_flags_parse_into_the_config_and_override_the_file(tmp_path):
    from lars_ref.train_command import config_from_args
    settings = tmp_path / "run.json"
    settings.write_text('{"lr": 0.5, "decay_clock": "after_warmup"}')
    args = cli.build_parser().parse_args(
        ["train", "--config", str(settings), "--dropout", "0.25", "--lr", "0.1",
         "--width", "1/16", "--no-progress", "--steps", "7"])
    config = config_from_args(args)
    assert (config.lr, config.dropout, config.width) == (0.1, 0.25, 0.0625)
    assert config.decay_clock == "after_warmup" and config.progress is False
    assert (config.steps, config.epochs) == (7, None)
    assert config_from_args(cli.build_parser().parse_args(
        ["train", "--width", "auto"])).width is None


def _choice_lists():
    """Every literal tuple/list of >= 2 strings used as a list of choices: assigned
    to an UPPER_CASE name, passed as choices=..., or tested with `in`."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            literals = []
            if isinstance(node, ast.Assign) and all(
                    isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
                literals.append(node.value)
            elif isinstance(node, ast.keyword) and node.arg == "choices":
                literals.append(node.value)
            elif isinstance(node, ast.Compare) and isinstance(
                    node.ops[0], (ast.In, ast.NotIn)):
                literals.extend(node.comparators)
            for literal in literals:
                if isinstance(literal, (ast.Tuple, ast.List)) \
                        and len(literal.elts) >= 2 and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                for e in literal.elts):
                    found.append((frozenset(e.value for e in literal.elts),
                                  f"{path.relative_to(PACKAGE)}:{literal.lineno}"))
    return found


def test_no_list_of_choices_is_written_in_two_modules():
    where = {}
    for choices, place in _choice_lists():
        where.setdefault(choices, []).append(place)
    modules = {choices: {place.split(":")[0] for place in places}
               for choices, places in where.items()}
    repeated = {tuple(sorted(c)): sorted(where[c]) for c, m in modules.items()
                if len(m) > 1}
    assert not repeated, f"lists of choices written in several modules: {repeated}"


def test_the_scan_finds_a_repeated_list(tmp_path, monkeypatch):
    """The test above can fail: a second backend list in another module is found."""
    fake = tmp_path / "lars_ref"
    fake.mkdir()
    (fake / "a.py").write_text('BACKENDS = ("numpy", "cupy", "auto")\n')
    (fake / "b.py").write_text('def f(x):\n    return x in ("numpy", "cupy", "auto")\n')
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    with pytest.raises(AssertionError, match="numpy"):
        test_no_list_of_choices_is_written_in_two_modules()


def test_width_half_builds_half_the_papers_widths(tmp_path):
    out = tmp_path / "half"
    status = cli.main(["train", "--model", "alexnet_bn", "--dataset", "digits",
                       "--width", "0.5", "--batch-size", "32", "--steps", "1",
                       "--no-progress", "--no-console", "--blas-threads", "1",
                       "--out", str(out)])
    assert status == 0
    model = load_checkpoint(out / "checkpoint.npz")["model"]
    paper = {"conv1": 96, "conv2": 256, "conv3": 384, "conv4": 384, "conv5": 256,
             "fc6": 4096, "fc7": 4096}
    for layer, channels in paper.items():
        weight = model[f"{layer}.w"]
        outputs = weight.shape[0] if weight.ndim == 4 else weight.shape[1]
        assert outputs == channels // 2, layer
    assert np.all(np.isfinite(model["fc8.w"]))


def test_every_command_of_the_tree_shows_its_flags_defaults():
    parser = cli.build_parser()
    commands = next(action for action in parser._actions
                    if isinstance(action, argparse._SubParsersAction))
    assert {"demo", "train", "download", "bench", "bench-optim", "vectors",
            "crosscheck"} <= set(commands.choices)
    for name, sub in commands.choices.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or not action.help or action.default in (
                    None, False, argparse.SUPPRESS):
                continue
            assert "default" in formatter._expand_help(action), (name, action.dest)

"""Source check: code that takes its array module from its inputs calls no bare ``np.``.

A module "takes its array module from its inputs" when it calls ``get_xp`` or has a
parameter named ``xp``. In such a module an ``np.<function>(...)`` on data works on
NumPy and breaks on CuPy (``np.asarray`` of a CuPy array raises; other functions
dispatch or copy silently), so the rule (``docs/gpu.md``) is ``xp.<function>``.
Allowed without a listing: NumPy types and dtypes (``np.float32``, ``np.ndarray``,
``np.random.Generator``: all randomness is drawn on the host), and calls whose first
argument is ``to_numpy(...)`` (host data by construction). Anything else must be in
:data:`HOST_ONLY` with the reason it only ever sees host data.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "lars_ref"
SKIPPED_FOLDERS = {"tools"}  # benchmarks and device probes: host harnesses, not ops

NON_ARRAY_NAMES = {"bool_", "dtype", "float16", "float32", "float64", "floating",
                   "generic", "int8", "int16", "int32", "int64", "integer", "ndarray",
                   "number", "random", "uint8", "void"}

# (file relative to lars_ref/, enclosing function, np attribute): why it is host-only
HOST_ONLY = {
    ("backend.py", "to_numpy", "asarray"):
        "the explicit transfer itself; reached only for host inputs",
    ("data_parallel.py", "check_same_settings", "zeros"):
        "per-rank flags built on the host, moved by _flag_array for the allreduce",
    ("data_parallel.py", "random", "prod"):
        "counts the floats of a host size tuple (the dropout generator stand-in)",
    ("functional/activations.py", "dropout_forward", "asarray"):
        "the dropout mask is drawn on the host (same mask on NumPy and CuPy), then "
        "moved with to_device",
    ("models.py", "weight_stds", "sqrt"):
        "initialisation stds are host floats",
    ("nn/layers.py", "__init__", "full"):
        "parameters are created on the host; Module.to moves them",
    ("nn/module.py", "_check_state_names_and_shapes", "shape"):
        "only for state entries without a .shape (lists, scalars): host values",
}


def _takes_xp_from_inputs(tree) -> bool:
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    args = {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    return "get_xp" in names or "xp" in args


def _enclosing_functions(tree) -> dict:
    owner = {}
    def visit(node, name):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef,
                                                     ast.AsyncFunctionDef)) else name
            owner[child] = name
            visit(child, inner)
    visit(tree, "<module>")
    return owner


def _is_to_numpy_call(node) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "to_numpy")


def np_uses(path: pathlib.Path) -> list:
    """``(function, attribute, line)`` of every ``np.<attribute>`` that needs a listing."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if not _takes_xp_from_inputs(tree):
        return []
    owner, host_args = _enclosing_functions(tree), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _is_to_numpy_call(node.args[0]):
            host_args.add(id(node.func))
    uses = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "np" and node.attr not in NON_ARRAY_NAMES
                and id(node) not in host_args):
            uses.append((owner[node], node.attr, node.lineno))
    return uses


def scanned_files() -> list:
    return [path for path in sorted(PACKAGE.rglob("*.py"))
            if not SKIPPED_FOLDERS & set(path.relative_to(PACKAGE).parts[:-1])]


def test_device_code_calls_no_bare_numpy_on_data():
    found = []
    for path in scanned_files():
        relative = path.relative_to(PACKAGE).as_posix()
        for function, attribute, line in np_uses(path):
            if (relative, function, attribute) not in HOST_ONLY:
                found.append(f"lars_ref/{relative}:{line} np.{attribute} in {function}()")
    assert not found, ("bare np. calls in code that takes xp from its inputs (use xp "
                       "= get_xp(...), or list a host-only use in HOST_ONLY with the "
                       "reason):\n" + "\n".join(found))


def test_every_allow_list_entry_is_still_used():
    used = {(path.relative_to(PACKAGE).as_posix(), function, attribute)
            for path in scanned_files() for function, attribute, _ in np_uses(path)}
    stale = sorted(set(HOST_ONLY) - used)
    assert not stale, f"HOST_ONLY entries that match no code any more: {stale}"


@pytest.mark.parametrize("source, expected", [
    ("def f(a):\n    xp = get_xp(a)\n    return np.mean(a)\n", [("f", "mean", 3)]),
    ("def f(a, xp):\n    return np.asarray(a, dtype=np.float32)\n", [("f", "asarray", 2)]),
    ("def f(a):\n    xp = get_xp(a)\n    return np.array(to_numpy(a))\n", []),
    ("def f(a):\n    return np.mean(a)\n", []),             # a host-only module
])
def test_scan_finds_bare_numpy_calls(tmp_path, source, expected):
    path = tmp_path / "module.py"
    path.write_text(source)
    assert np_uses(path) == expected

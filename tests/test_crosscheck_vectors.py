"""Reference files: deterministic bytes, content hashes, tamper detection, readable numbers."""
import json
import zipfile

import numpy as np
import pytest

from lars_ref.crosscheck import CASES, ReferenceFileError, get_case, load_vectors, write_vectors
from lars_ref.crosscheck.cli import vectors_main
from lars_ref.crosscheck.reference import run_case
from lars_ref.crosscheck.storage import arrays_sha256, read_npz, write_npz

SMALL = dict(presets=["paper_iclr", "optax"], cases=CASES[:2])


def algorithm1_oracle(case):
    """Algorithm 1 ([ICLR]: eta in L4, gamma_t in L5), written out here: (w, v, lam) per step."""
    w = case.initial_weights()
    v = {k: np.zeros_like(a) for k, a in w.items()}
    m, beta, eta = case.momentum, case.weight_decay, case.eta
    history = []
    for t, grads in enumerate(case.gradients()):
        lams = {}
        for k, g in grads.items():
            w_norm, g_norm = np.linalg.norm(w[k]), np.linalg.norm(g)
            denominator = g_norm + beta * w_norm
            lams[k] = eta * w_norm / denominator if denominator > 0 else 0.0
            v[k] = m * v[k] + case.gamma(t) * lams[k] * (g + beta * w[k])
            w[k] = w[k] - v[k]
        history.append(({k: a.copy() for k, a in w.items()},
                        {k: a.copy() for k, a in v.items()}, lams))
    return history


def test_regenerated_files_are_byte_identical(tmp_path):
    write_vectors(tmp_path / "a", **SMALL)
    run_case.cache_clear()                                   # recompute, do not reuse
    write_vectors(tmp_path / "b", **SMALL)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.*"))
    assert files_a == files_b and len(files_a) == 5          # 2 presets x 2 cases + manifest
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    with zipfile.ZipFile(tmp_path / "a" / "optax" / f"{CASES[0].name}.npz") as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_stored_paper_numbers_equal_algorithm1_written_out(tmp_path):
    case = get_case("warmup_poly_wd")
    write_vectors(tmp_path, presets=["paper_iclr"], cases=[case])
    with np.load(tmp_path / "paper_iclr" / f"{case.name}.npz") as npz:   # plain numpy
        stored = {key: npz[key] for key in npz.files}
    for t, (w, v, lams) in enumerate(algorithm1_oracle(case)):
        for k in case.tensor_names:
            np.testing.assert_allclose(stored[f"w/{k}"][t], w[k], rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(stored[f"v/{k}"][t], v[k], rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(stored[f"local_lr/{k}"][t], lams[k], rtol=1e-13)
    assert np.all(stored["w/fc.b"] == 0.0)          # the paper freezes the zero-init bias
    assert np.all(stored["grad/conv.w"][2] == 0.0)  # the zero-gradient event


def test_manifest_describes_schedule_shapes_and_hashes(tmp_path):
    path = write_vectors(tmp_path, **SMALL)
    manifest = json.loads(path.read_text())
    case = manifest["cases"]["warmup_poly_wd"]
    expected = [0.5, 1.25] + [2.0 * (1 - t / 6) ** 2 for t in range(2, 7)]   # warm-up, poly(2)
    np.testing.assert_allclose(case["schedule"]["gamma"], expected, rtol=1e-15)
    assert "(1 - min(t, 6) / 6)^2.0" in case["schedule"]["formula"]
    assert case["tensors"]["conv.w"]["shape"] == [4, 3, 3, 3]
    assert manifest["dtype"] == "float64" and manifest["lars_ref_version"]
    assert manifest["presets"]["optax"]["deviations_from_paper"]["trust_denominator"] == \
        "decayed_grad_norm"
    for entry in manifest["files"]:
        with np.load(tmp_path / entry["path"]) as npz:
            assert arrays_sha256({k: npz[k] for k in npz.files}) == entry["sha256_arrays"]


def test_loaded_trajectory_equals_a_fresh_run(tmp_path):
    write_vectors(tmp_path, **SMALL)
    stored = load_vectors(tmp_path).arrays("optax", CASES[1].name)
    fresh = run_case(CASES[1], preset="optax")
    for t in range(CASES[1].num_steps):
        for k in CASES[1].tensor_names:
            assert np.array_equal(stored[f"w/{k}"][t], fresh.weights[t + 1][k])
            assert stored[f"local_lr/{k}"][t] == fresh.local_lrs[t][k]


def test_tampered_file_fails_its_hash_naming_the_file(tmp_path):
    write_vectors(tmp_path, **SMALL)
    target = tmp_path / "optax" / f"{CASES[0].name}.npz"
    arrays = read_npz(target)
    arrays["w/conv.w"][3, 0, 0, 0] += 1e-12               # one number, slightly
    write_npz(target, arrays)
    references = load_vectors(tmp_path)
    references.arrays("paper_iclr", CASES[0].name)         # the other files still load
    with pytest.raises(ReferenceFileError, match=r"optax/constant_wd\.npz fails its content hash"):
        references.arrays("optax", CASES[0].name)
    assert vectors_main(["--verify", str(tmp_path)]) == 2


def test_truncated_file_is_a_clear_error(tmp_path):
    write_vectors(tmp_path, **SMALL)
    target = tmp_path / "paper_iclr" / f"{CASES[1].name}.npz"
    target.write_bytes(target.read_bytes()[:500])
    with pytest.raises(ReferenceFileError, match=r"paper_iclr/warmup_poly_wd\.npz cannot be read"):
        load_vectors(tmp_path).verify_all()


def test_cli_writes_and_verifies(tmp_path, capsys):
    assert vectors_main(["--out", str(tmp_path), "--presets", "timm"]) == 0
    assert vectors_main(["--verify", str(tmp_path)]) == 0
    assert f"{len(CASES)} reference files" in capsys.readouterr().out
    assert vectors_main(["--out", str(tmp_path / "x"), "--presets", "no_such_lars"]) == 2
    assert "unknown LARS preset 'no_such_lars'" in capsys.readouterr().err


def test_missing_manifest_names_the_fix(tmp_path):
    with pytest.raises(ReferenceFileError, match="lars-ref vectors --out DIR"):
        load_vectors(tmp_path)


def test_docs_reading_example_runs(tmp_path):
    """The numpy + json example of docs/crosscheck.md reads, verifies and replays the files."""
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[1] / "docs" / "crosscheck.md").read_text()
    marker = doc.index("tested by tests/test_crosscheck_vectors.py::test_docs_reading_example_runs")
    start = doc.index("```python\n", marker) + len("```python\n")
    snippet = doc[start:doc.index("```", start)]
    assert 'root = "ref"' in snippet
    write_vectors(tmp_path, presets=["paper_iclr"], cases=[get_case("warmup_poly_wd")])
    exec(snippet.replace('root = "ref"', f'root = {str(tmp_path)!r}'), {})

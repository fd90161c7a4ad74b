"""Reference trajectories ("golden files") for every preset on every case.

``lars-ref vectors --out DIR`` writes, in float64:

* ``DIR/<preset>/<case>.npz``, one per preset and case, with the keys
  (``T`` = number of steps, ``S`` = the tensor's shape)::

      gamma              (T + 1,)     gamma_t for t = 0..T (the last one only for gamma_{t+1})
      w0/<tensor>        S            initial weights w_0
      grad/<tensor>      (T, *S)      the gradient fed at step t (row t)
      w/<tensor>         (T, *S)      the weights after step t, i.e. w_{t+1}
      v/<tensor>         (T, *S)      the momentum buffer after step t, v_{t+1}
      local_lr/<tensor>  (T,)         lam^l of step t

* ``DIR/manifest.json``: format, lars_ref version, dtype, the key layout, the hash
  recipe, every case (hyperparameters, schedule formula and per-step gamma, tensor
  shapes) and preset (description, source, options), and one entry per file with
  the sha256 content hash of its arrays (:func:`storage.arrays_sha256`).

The files are byte-deterministic (see :mod:`lars_ref.crosscheck.storage`) and
readable without lars_ref (``docs/crosscheck.md`` shows how).

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

import lars_ref
from lars_ref.crosscheck.cases import CASES, Case, schedule_description
from lars_ref.crosscheck.reference import Trajectory, run_case
from lars_ref.crosscheck.storage import ReferenceFileError, arrays_sha256, read_npz, write_npz
from lars_ref.optim.variants import PRESETS

FORMAT = "lars_ref-crosscheck-vectors/1"
KEY_LAYOUT = {
    "gamma": "(T+1,) gamma_t for t = 0..T",
    "w0/<tensor>": "S, initial weights",
    "grad/<tensor>": "(T, *S), row t = gradient fed at step t",
    "w/<tensor>": "(T, *S), row t = weights after step t (w_{t+1})",
    "v/<tensor>": "(T, *S), row t = momentum buffer after step t (v_{t+1})",
    "local_lr/<tensor>": "(T,), row t = local LR lam of step t",
}
HASH_RECIPE = ("sha256 over keys in sorted order of: key utf-8, NUL, dtype str ('<f8'), NUL, "
               "shape as comma-separated decimals, NUL, C-order little-endian bytes")


def trajectory_arrays(case: Case, trajectory: Trajectory) -> dict:
    """Flatten one trajectory into the npz key layout of the module docstring."""
    grads = case.gradients()
    arrays = {"gamma": case.gammas()}
    for name in case.tensor_names:
        arrays[f"w0/{name}"] = np.asarray(trajectory.weights[0][name])
        arrays[f"grad/{name}"] = np.stack([g[name] for g in grads])
        arrays[f"w/{name}"] = np.stack([w[name] for w in trajectory.weights[1:]])
        arrays[f"v/{name}"] = np.stack([v[name] for v in trajectory.buffers])
        arrays[f"local_lr/{name}"] = np.array([lam[name] for lam in trajectory.local_lrs])
    return arrays


def case_manifest(case: Case) -> dict:
    """The JSON description of a case: hyperparameters, schedule, tensors, zero gradients."""
    schedule = schedule_description(case.schedule)
    schedule["gamma"] = case.gammas().tolist()
    return {"description": case.description, "hyperparameters": case.hyperparameters(),
            "schedule": schedule, "dtype": "float64",
            "tensors": {s.name: {"shape": list(s.shape), "init": s.init,
                                 "weight_scale": s.weight_scale, "grad_scale": s.grad_scale}
                        for s in case.tensors},
            "zero_grads": [{"tensor": name, "step": step} for name, step in case.zero_grads]}


def preset_manifest(name: str) -> dict:
    """The JSON description of a preset: text, source and every option value."""
    preset = PRESETS[name]
    options = dataclasses.asdict(preset.options)                # tuples become JSON lists
    return {"description": preset.description, "source": preset.source, "options": options,
            "deviations_from_paper": {k: options[k] for k in preset.options.deviations()}}


def write_vectors(out_dir, presets=None, cases=CASES) -> Path:
    """Write every ``<preset>/<case>.npz`` and ``manifest.json`` under ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
    presets : iterable of str, optional
        Preset names (default: all of :data:`lars_ref.optim.PRESETS`).
    cases : iterable of Case

    Returns
    -------
    Path
        The manifest's path.
    """
    out_dir = Path(out_dir)
    presets = list(PRESETS) if presets is None else list(presets)
    files = []
    for preset in presets:
        for case in cases:
            arrays = trajectory_arrays(case, run_case(case, preset=preset))
            relative = f"{preset}/{case.name}.npz"
            write_npz(out_dir / relative, arrays)
            files.append({"preset": preset, "case": case.name, "path": relative,
                          "sha256_arrays": arrays_sha256(arrays)})
    manifest = {"format": FORMAT, "lars_ref_version": lars_ref.__version__, "dtype": "float64",
                "steps": "0-based t; w/<tensor> row t holds w_{t+1}",
                "keys": KEY_LAYOUT, "hash_recipe": HASH_RECIPE,
                "cases": {case.name: case_manifest(case) for case in cases},
                "presets": {name: preset_manifest(name) for name in presets},
                "files": files}
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


@dataclasses.dataclass
class ReferenceSet:
    """A loaded ``vectors`` directory: the manifest plus hash-checked arrays on demand."""

    root: Path
    manifest: dict

    def entry(self, preset: str, case: str) -> dict:
        """The manifest's file entry for ``(preset, case)``; ValueError if absent."""
        for entry in self.manifest["files"]:
            if entry["preset"] == preset and entry["case"] == case:
                return entry
        raise ReferenceFileError(f"{self.root / 'manifest.json'} lists no file for preset "
                                 f"{preset!r} and case {case!r}")

    def arrays(self, preset: str, case: str) -> dict:
        """The arrays of ``<preset>/<case>.npz``, after checking their content hash."""
        entry = self.entry(preset, case)
        return read_npz(self.root / entry["path"], entry["sha256_arrays"])

    def verify_all(self) -> int:
        """Check every file's content hash; return how many were checked."""
        for entry in self.manifest["files"]:
            read_npz(self.root / entry["path"], entry["sha256_arrays"])
        return len(self.manifest["files"])


def load_vectors(root) -> ReferenceSet:
    """Open a directory written by :func:`write_vectors` (the manifest is read now)."""
    root = Path(root)
    path = root / "manifest.json"
    if not path.is_file():
        raise ReferenceFileError(f"{path} does not exist; write the reference files with "
                                 "`lars-ref vectors --out DIR`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReferenceFileError(f"{path} is not valid JSON ({err})") from None
    if manifest.get("format") != FORMAT:
        raise ReferenceFileError(f"{path} has format {manifest.get('format')!r}; this lars_ref "
                                 f"reads {FORMAT!r}")
    return ReferenceSet(root, manifest)

"""Presets: documented, buildable, and equal to independent re-statements of their sources.

Implementations that cannot be installed on a CPU-only Python 3.11 (apex, torchlars,
Lightning Bolts, TF, MXNet, Caffe, the NUS-HPC script, Barlow Twins) are re-stated
below in plain NumPy, written from their source code (repository and file in each
preset, docs/variants.md), NOT from LarsOptions. optax, pytorch-optimizer
(and timm, when installed) are checked live in test_optim_crosscheck.py.
"""
import pathlib

import numpy as np
import pytest

from lars_ref.optim import PRESETS, build_preset, get_preset, option_names
from lars_ref.optim.variants import variants_markdown

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "variants.md"
LRS = [0.05, 0.4, 0.3, 0.2, 0.1, 0.05]                      # warm-up then decay
M, BETA, ETA = 0.9, 0.01, 0.5


def norm(x):
    return float(np.sqrt(np.sum(x * x)))


def start_and_grads():
    rng = np.random.default_rng(7)
    params = {"conv.w": rng.normal(size=(3, 2, 2, 2)), "conv.b": np.zeros(3),
              "bn.gamma": np.ones(3), "fc.w": rng.normal(size=(4, 3))}
    grads = []
    for t in range(len(LRS)):
        step = {k: 6.0 * rng.normal(size=x.shape) for k, x in params.items()}  # some > 10
        step["fc.w"] *= 1e-3                                  # large trust ratios (> 50)
        if t == 2:
            step["bn.gamma"] = np.zeros(3)                    # ||g|| = 0 with ||w|| > 0
        grads.append(step)
    return params, grads


def run_preset(name):
    params, grads = start_and_grads()
    opt = build_preset(name, lambda t: LRS[t], momentum=M, weight_decay=BETA, eta=ETA)
    for g in grads:
        opt.step(params, g)
    return params


def run_restatement(update):
    """Drive ``update(name, p, g, state, t)`` (in place) over the same steps."""
    params, grads = start_and_grads()
    states = {k: {} for k in params}
    for t, step in enumerate(grads):
        for k in params:
            update(k, params[k], step[k], states[k], t)
    return params


def ratio_or_one(w_norm, g_norm, value):
    return value() if (w_norm > 0 and g_norm > 0) else 1.0


def torch_sgd_momentum(p, d_p, state, lr, dampening=0.0):
    """torch.optim.SGD's momentum (weight decay already folded in): LR outside."""
    if "buf" not in state:
        state["buf"] = d_p.copy()
    else:
        state["buf"] = M * state["buf"] + (1 - dampening) * d_p
    p -= lr * state["buf"]


def apex_larc(clip):
    def update(name, p, g, state, t):
        wn, gn, lr = norm(p), norm(g), LRS[t]
        d_p = g
        if wn != 0 and gn != 0:                               # else: untouched, wd lost
            r = ETA * wn / (gn + wn * BETA + 1e-8)
            if clip:
                r = min(r / lr, 1.0)
            d_p = (g + BETA * p) * r
        torch_sgd_momentum(p, d_p, state, lr)
    return update


def torchlars(name, p, g, state, t):
    wn, gn = norm(p), norm(g)
    r = ratio_or_one(wn, gn, lambda: wn / (gn + BETA * wn + 1e-8) * ETA)
    torch_sgd_momentum(p, (g + BETA * p) * r, state, LRS[t])


def timm(trust_clip):
    """timm/optim/lars.py (1.0.31): adapted only where weight decay != 0 (here always)."""
    def update(name, p, g, state, t):
        wn, gn, lr = norm(p), norm(g), LRS[t]
        r = ratio_or_one(wn, gn, lambda: ETA * wn / (gn + wn * BETA + 1e-8))
        if trust_clip:
            r = min(r / lr, 1.0)
        torch_sgd_momentum(p, (g + BETA * p) * r, state, lr)
    return update


def lightning_bolts(name, p, g, state, t):
    wn, gn = norm(p), norm(g)
    d_p = g
    if BETA != 0 and wn != 0 and gn != 0:
        d_p = (g + BETA * p) * (ETA * wn / (gn + BETA * wn + 1e-8))
    torch_sgd_momentum(p, d_p, state, LRS[t])


def barlow_twins(name, p, g, state, t):
    dp = g if p.ndim == 1 else g + BETA * p
    if p.ndim != 1:
        wn, dn = norm(p), norm(dp)
        dp = dp * ratio_or_one(wn, dn, lambda: ETA * wn / dn)
    state["mu"] = M * state.get("mu", 0.0) + dp
    p -= LRS[t] * state["mu"]


def tf_model_garden(exclude_1d):
    def update(name, p, g, state, t):
        excluded = exclude_1d and p.ndim <= 1
        if not excluded:
            g = g + BETA * p
        wn, gn = norm(p), norm(g)
        ratio = 1.0 if excluded else ratio_or_one(wn, gn, lambda: ETA * wn / gn)
        state["v"] = M * state.get("v", 0.0) + LRS[t] * ratio * g
        p -= state["v"]
    return update


def tf_contrib(name, p, g, state, t):
    wn, gn = norm(p), norm(g)
    ratio = ratio_or_one(wn, gn, lambda: ETA * wn / (gn + BETA * wn))
    state["accum"] = M * state.get("accum", 0.0) + g           # beta w never added
    p -= LRS[t] * ratio * state["accum"]


def mlperf(name, p, g, state, t):
    if p.ndim <= 1:                                           # skip_list: plain momentum, no wd
        scaled_lr, u = LRS[t], g
    else:
        wn, gn = norm(p), norm(g)
        scaled_lr = LRS[t] * ratio_or_one(wn, gn, lambda: ETA * wn / (gn + BETA * wn))
        u = g + BETA * p
    state["v"] = M * state.get("v", 0.0) + scaled_lr * u
    p -= state["v"]


def nvidia_mxnet(name, p, g, state, t):
    wn, gn = norm(p), norm(g)
    if p.ndim <= 1:                                           # gamma/beta/bias: no LARS, no wd
        lr_l, wd = LRS[t], 0.0
    else:
        lr_l, wd = LRS[t] * ratio_or_one(wn, gn, lambda: ETA * wn / (gn + BETA * wn)), BETA
    momentum = M * LRS[t] / LRS[t - 1] if t > 0 else M       # momentum correction
    state["s"] = momentum * state.get("s", 0.0) - lr_l * (g + wd * p)
    p += state["s"]


def nvcaffe(year):
    def update(name, p, g, state, t):
        wn, gn = norm(p), norm(g)
        if year == 2017:
            rate = ratio_or_one(wn, gn, lambda: ETA * wn / (gn + BETA * wn))
        else:
            rate = ratio_or_one(wn, gn, lambda: (1 - M) * ETA * wn / gn)
        state["h"] = M * state.get("h", 0.0) + LRS[t] * rate * (g + BETA * p)
        p -= state["h"]
    return update


def nus_hpc(name, p, g, state, t):
    lars, wd = p.ndim > 1, (BETA if p.ndim > 1 else 0.0)     # bn_bias_separately=True
    decayed, scaled_lr = g, LRS[t]
    if lars:
        wn, gn = norm(p), norm(g)
        ratio = ratio_or_one(wn, gn, lambda: ETA * wn / (gn + wd * wn + 0.0))
        scaled_lr *= min(max(ratio, 0.0), 50.0)
        decayed = g + wd * p
    decayed = np.clip(decayed, -10.0, 10.0)
    state["buf"] = decayed.copy() if "buf" not in state else M * state["buf"] + decayed
    p -= scaled_lr * state["buf"]


RESTATEMENTS = {
    "apex_larc_clip": apex_larc(clip=True), "apex_larc_scale": apex_larc(clip=False),
    "torchlars": torchlars, "timm": timm(trust_clip=False),
    "timm_trust_clip": timm(trust_clip=True), "lightning_bolts": lightning_bolts, "barlow_twins": barlow_twins,
    "tf_model_garden": tf_model_garden(False), "simclr": tf_model_garden(True),
    "tf_contrib": tf_contrib, "mlperf": mlperf, "nvidia_mxnet": nvidia_mxnet,
    "nvcaffe_2017": nvcaffe(2017), "nvcaffe_2018": nvcaffe(2018), "nus_hpc": nus_hpc,
}


@pytest.mark.parametrize("name", sorted(RESTATEMENTS))
def test_preset_equals_restatement_of_its_source(name):
    ours, theirs = run_preset(name), run_restatement(RESTATEMENTS[name])
    for k in ours:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_restatements_exercise_the_clamps_and_zero_norms():
    """The data above must actually reach NUS-HPC's clamps and the zero-norm branches."""
    params, grads = start_and_grads()
    assert max(np.abs(g).max() for step in grads for g in step.values()) > 10.0
    assert ETA * norm(params["fc.w"]) / norm(grads[0]["fc.w"]) > 50.0
    assert norm(params["conv.b"]) == 0.0 and norm(grads[2]["bn.gamma"]) == 0.0


def test_every_preset_is_listed_in_docs_variants_md():
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in PRESETS if f"`{name}`" not in text]
    assert not missing, f"docs/variants.md lacks presets {missing}"
    assert variants_markdown() in text, "docs/variants.md table is stale: regenerate it"


def test_presets_have_sources_and_one_line_descriptions():
    assert len(PRESETS) >= 17
    for preset in PRESETS.values():
        assert preset.repository and preset.file and "\n" not in preset.description
        assert set(preset.options.deviations()) <= set(option_names())


def test_build_preset_overrides_and_rejects_unknown_names():
    opt = build_preset("apex_larc_clip", 0.1, momentum=0.9, weight_decay=0.0, eta=0.02,
                       trust_ratio_clip=False)
    assert opt.options == get_preset("apex_larc_scale").options
    assert opt.eta == 0.02
    with pytest.raises(ValueError, match="unknown LARS preset 'apex'.*apex_larc_clip"):
        build_preset("apex", 0.1, momentum=0.9, weight_decay=0.0, eta=0.02)
    with pytest.raises(ValueError, match="unknown LARS option"):
        build_preset("timm", 0.1, momentum=0.9, weight_decay=0.0, eta=0.02, clip=True)


def test_every_option_is_documented_in_docs_algorithm1_md():
    text = (DOC.parent / "algorithm1.md").read_text(encoding="utf-8")
    missing = [name for name in option_names() if f"`{name}`" not in text]
    assert not missing, f"docs/algorithm1.md lacks options {missing}"
    for label in ("P ", "I ", "L1", "L2", "L3", "L4", "L5", "L6", "L7"):
        assert f"\n{label}" in text

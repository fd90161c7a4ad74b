"""Every public LARS implementation as a named preset of :class:`LarsOptions`.

Sources: each rule was read in the implementation's own code (repository, file and
commit in :attr:`Preset.repository` / :attr:`Preset.file`; the table is
``docs/variants.md``). A preset only sets *options* (how the rule differs from
Algorithm 1); the hyperparameters (m, beta, eta, the LR schedule) are given to
:func:`lars_ref.optim.lars.build_preset`, so that all presets can be compared at
equal settings. Each library's own defaults are in ``Preset.source_defaults``.

Rank exclusions: the sources exclude "BatchNorm and bias" tensors by name
(``batch_normalization``, ``bias``, ``gamma``/``beta``). In lars_ref's models those
are exactly the tensors with ``ndim <= 1``, so the presets exclude by rank
(``exclude_1d_*``); pass name patterns as overrides for other naming schemes.

Introduced in ``notebooks/04_which_lars_is_mine.ipynb``; table in ``docs/variants.md``.
"""
from __future__ import annotations

import dataclasses

from lars_ref.optim.variants.options import PAPER, PAPER_V3_AS_PRINTED, LarsOptions


@dataclasses.dataclass(frozen=True)
class Preset:
    """One public LARS implementation, expressed as LARS options.

    Attributes
    ----------
    name : str
        Preset key in :data:`PRESETS`.
    description : str
        One line: how it differs from Algorithm 1 ([ICLR] form).
    repository, file : str
        Where the rule was read ("owner/name" or a paper id, and the path).
    options : LarsOptions
        The switches that reproduce it.
    source_defaults : str
        The implementation's own default hyperparameters (informative only).
    """

    name: str
    description: str
    repository: str
    file: str
    options: LarsOptions
    source_defaults: str = ""

    @property
    def source(self) -> str:
        """``"repository, file"``."""
        return f"{self.repository}, {self.file}"


# Option groups that several implementations share:
LAM_ONE_ON_ZERO_NORM = dict(zero_norm_rule="ratio_one")
TORCH_SGD_FORM = dict(global_lr_in_buffer=False, buffer_starts_as_copy=True)   # LR outside
SKIP_1D_TENSORS = dict(exclude_1d_from_adaptation=True,                  # biases and BN:
                       exclude_1d_from_weight_decay=True)                # no LARS, no decay
DECAYED_GRAD_NORM = dict(trust_denominator="decayed_grad_norm",          # ||g + beta w||
                         **LAM_ONE_ON_ZERO_NORM)
TIMM_RULE = dict(eps=1e-8, adapt_only_with_weight_decay=True, **LAM_ONE_ON_ZERO_NORM,
                 **TORCH_SGD_FORM)

_PRESET_LIST = [
    Preset("paper_v3", "Algorithm 1 exactly as printed in arXiv v3: no eta in L4, gamma_{t+1} "
           "in L5; a zero-norm tensor is frozen (lam = 0)",
           "arXiv:1708.03888v3", "Algorithm 1", PAPER_V3_AS_PRINTED,
           "eta 0.001 (stated, unused)"),
    Preset("paper_iclr", "Algorithm 1 as in the ICLR 2018 text (the lars_ref default): eta in "
           "L4, gamma_t in L5, no eps, no fallback (zero ||w|| freezes the tensor)",
           "OpenReview rJ4uaX2aW", "Algorithm 1", PAPER, "eta 0.001, m 0.9, beta 5e-4"),
    Preset("nvcaffe_2017", "the authors' code = Algorithm 1 [ICLR], but lam = 1 when ||w|| or "
           "||g|| is 0", "borisgin/nvcaffe (NVIDIA/caffe)", "src/caffe/solvers/sgd_solver.cpp, "
           ".cu @14d67475 / 0dac8639", PAPER.replace(**LAM_ONE_ON_ZERO_NORM),
           "local_gw_ratio (eta) 0.001"),
    Preset("apex_larc_clip", "eps 1e-8; lam <- min(lam/gamma, 1); zero norm: skipped and weight "
           "decay lost; LR outside the buffer (torch SGD)", "NVIDIA/apex",
           "apex/parallel/LARC.py (deleted in cb65b8ed)",
           PAPER.replace(eps=1e-8, zero_norm_rule="skip", trust_ratio_clip=True,
                         **TORCH_SGD_FORM),
           "trust_coefficient 0.02, clip True, eps 1e-8; m, beta from the inner SGD"),
    Preset("apex_larc_scale", "apex LARC with clip=False: eps 1e-8; zero norm: skipped and "
           "weight decay lost; LR outside the buffer", "NVIDIA/apex",
           "apex/parallel/LARC.py (deleted in cb65b8ed)",
           PAPER.replace(eps=1e-8, zero_norm_rule="skip", **TORCH_SGD_FORM),
           "used with trust_coefficient 0.001 by SwAV and VISSL"),
    Preset("torchlars", "eps 1e-8; lam = 1 on a zero norm (weight decay kept); LR outside the "
           "buffer (wrapped torch SGD)", "kakaobrain/torchlars",
           "torchlars/lars.py, adaptive_lr.cc",
           PAPER.replace(eps=1e-8, **LAM_ONE_ON_ZERO_NORM, **TORCH_SGD_FORM),
           "trust_coef 0.001, eps 1e-8"),
    Preset("timm", "eps 1e-8; lam = 1 on a zero norm; no adaptation where weight decay is 0; "
           "LR outside the buffer", "huggingface/pytorch-image-models",
           "timm/optim/lars.py (1.0.31)", PAPER.replace(**TIMM_RULE),
           "trust_coeff 0.001, eps 1e-8, momentum 0, weight_decay 0, trust_clip False"),
    Preset("optax", "denominator ||g + beta w||; lam = 1 when ||w|| or ||g + beta w|| is 0; LR "
           "inside the trace (as the paper)", "google-deepmind/optax",
           "optax/_src/alias.py (lars), transform.py (scale_by_trust_ratio)",
           PAPER.replace(**DECAYED_GRAD_NORM),
           "trust_coefficient 0.001, eps 0, momentum 0.9, wd 0"),
    Preset("tf_model_garden", "classic momentum: denominator ||g + beta w||, no eps, lam = 1 on "
           "a zero norm, LR inside (= optax); no exclusions by default", "tensorflow/models",
           "official/modeling/optimization/lars.py", PAPER.replace(**DECAYED_GRAD_NORM),
           "eeta 0.001, momentum 0.9, weight_decay_rate 0, classic_momentum True"),
    Preset("simclr", "TF Model Garden rule as SimCLR trains it: BN and bias tensors excluded "
           "from weight decay and adaptation", "google-research/simclr",
           "lars_optimizer.py, tf2/lars_optimizer.py",
           PAPER.replace(**DECAYED_GRAD_NORM, **SKIP_1D_TENSORS),
           "eeta 0.001, momentum 0.9; exclude ['batch_normalization', 'bias', 'head_supervised']"),
    Preset("lightning_bolts", "eps 1e-8; zero norm or weight decay 0: neither LARS nor weight "
           "decay; LR outside the buffer", "Lightning-Universe/lightning-bolts",
           "src/pl_bolts/optimizers/lars.py (>= 0.3.3; lightly copies it)",
           PAPER.replace(eps=1e-8, zero_norm_rule="skip", adapt_only_with_weight_decay=True,
                         **TORCH_SGD_FORM),
           "trust_coefficient 0.001, eps 1e-8, momentum 0, wd 0"),
    Preset("barlow_twins", "denominator ||g + beta w||, no eps, lam = 1 on a zero norm, LR "
           "outside the buffer, 1-D tensors excluded from both (Barlow Twins / DINO / VISSL)",
           "facebookresearch/barlowtwins",
           "main.py (LARS); dino utils.py; vissl optimizers/lars.py",
           PAPER.replace(**DECAYED_GRAD_NORM, **SKIP_1D_TENSORS, global_lr_in_buffer=False),
           "eta 0.001, momentum 0.9; filters on in the training scripts"),
    Preset("tf_contrib", "never adds beta w to the update (L2 belongs in the loss); gamma_t and "
           "the current lam multiply the whole buffer; lam = 1 on a zero norm",
           "tensorflow/tensorflow", "tensorflow/contrib/opt/python/training/lars_optimizer.py",
           PAPER.replace(add_weight_decay_to_update=False, global_lr_in_buffer=False,
                         local_lr_in_buffer=False, **LAM_ONE_ON_ZERO_NORM),
           "eeta 0.001, epsilon 0, momentum 0.9, weight_decay 1e-4"),
    Preset("mlperf", "Algorithm 1 with lam = 1 on a zero norm, BN and bias (skip_list) given "
           "plain momentum SGD without weight decay", "mlcommons/training",
           "image_classification/tensorflow/official/resnet/mlperf_lars_optimizer.py",
           PAPER.replace(**LAM_ONE_ON_ZERO_NORM, **SKIP_1D_TENSORS),
           "eeta 0.001, epsilon 0 (TF2 reference: silently 1e-7), momentum 0.9, wd 1e-4"),
    Preset("nvidia_mxnet", "lam = 1 on a zero norm; momentum corrected by gamma_t/gamma_{t-1} "
           "(= LR outside); gamma/beta/bias excluded from both",
           "mlcommons/training_results_v0.7",
           "NVIDIA/benchmarks/resnet/implementations/mxnet/common/fit.py (SGDwFASTLARS)",
           PAPER.replace(momentum_correction=True, **LAM_ONE_ON_ZERO_NORM, **SKIP_1D_TENSORS),
           "eta 0.001, eps 0"),
    Preset("nvcaffe_2018", "lam = (1 - m) eta ||w|| / ||g|| (no weight decay in the "
           "denominator), lam = 1 on a zero norm; larc_policy 'scale'", "NVIDIA/caffe",
           "src/caffe/solvers/sgd_solver.cpp (HEAD 87a25543, since 6beb5e86)",
           PAPER.replace(trust_denominator="grad_norm", scale_by_one_minus_momentum=True,
                         **LAM_ONE_ON_ZERO_NORM),
           "larc_eta 0.001, larc_policy 'scale' (clip: trust_ratio_clip=True)"),
    Preset("nus_hpc", "lam clamped to [0, 50], g + beta w clamped to [-10, 10], gamma_t and lam "
           "multiply the whole buffer; BN and bias excluded from both",
           "NUS-HPC-AI-Lab/LARS-ImageNet-PyTorch", "lars.py (create_optimizer_lars)",
           PAPER.replace(trust_ratio_max=50.0, grad_clamp=10.0, global_lr_in_buffer=False,
                         local_lr_in_buffer=False, buffer_starts_as_copy=True,
                         **LAM_ONE_ON_ZERO_NORM, **SKIP_1D_TENSORS),
           "eeta 0.001, epsilon 0 (1e-5 in an older commit), momentum 0, wd 0"),
    Preset("pytorch_optimizer", "lam = 1 when ||w|| or the denominator is 0; only ndim > 1 "
           "tensors get LARS and weight decay; LR outside the buffer (zero-initialised)",
           "kozistr/pytorch_optimizer", "pytorch_optimizer/optimizer/lars.py (4.1.0)",
           PAPER.replace(zero_norm_rule="ratio_one_on_zero_denominator",
                         global_lr_in_buffer=False, **SKIP_1D_TENSORS),
           "lr 1e-3, trust_coefficient 1e-3, momentum 0.9, wd 0"),
    Preset("timm_trust_clip", "timm's Lars(trust_clip=True): the timm rule, then lam <- "
           "min(lam/gamma, 1) (after the lam = 1 fallback)", "huggingface/pytorch-image-models",
           "timm/optim/lars.py (1.0.31), trust_clip branch",
           PAPER.replace(trust_ratio_clip=True, **TIMM_RULE),
           "trust_coeff 0.001, eps 1e-8, momentum 0, weight_decay 0, trust_clip True"),
]

PRESETS: dict = {preset.name: preset for preset in _PRESET_LIST}
"""``{name: Preset}``: every public implementation (``docs/variants.md``)."""


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name raises ValueError listing the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown LARS preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def variants_markdown() -> str:
    """The table of ``docs/variants.md``: preset, what differs from Algorithm 1, source."""
    lines = ["| preset | what differs from Algorithm 1 ([ICLR] form) | options | source |",
             "| --- | --- | --- | --- |"]
    for p in PRESETS.values():
        changed = ", ".join(f"`{k}={v!r}`" for k, v in p.options.deviations().items()) or "(none)"
        lines.append(f"| `{p.name}` | {p.description} | {changed} | {p.repository}: `{p.file}` |")
    return "\n".join(lines) + "\n"


__all__ = ["Preset", "PRESETS", "get_preset", "variants_markdown"]

"""Live cross-checks of the optimizers against independent implementations (float64).

100 steps, a warm-up + poly-decay schedule, four tensors of different shapes, one
of them a zero-initialised bias. The gradient of each step is ``w + noise_t`` (a
quadratic loss plus seeded noise), so a difference in one step feeds back into
every later one. Each oracle is skipped with a reason when its package is absent.
"""
import numpy as np
import pytest

from lars_ref.optim import SGD, WarmupPolySchedule, build_preset

STEPS = 100
SCHEDULE = WarmupPolySchedule(0.5, total_steps=STEPS, warmup_steps=10, warmup_start_lr=0.05)
SHAPES = {"conv1.w": (4, 3, 3, 3), "conv1.b": (4,), "bn1.gamma": (4,), "fc.w": (6, 5)}
RTOL = 1e-10


def initial_params():
    rng = np.random.default_rng(0)
    params = {name: rng.normal(0.0, 0.3, size=shape) for name, shape in SHAPES.items()}
    params["conv1.b"] = np.zeros(SHAPES["conv1.b"])           # zero-initialised bias
    params["bn1.gamma"] = np.ones(SHAPES["bn1.gamma"])
    return params


def noises():
    rng = np.random.default_rng(1)
    return [{name: rng.normal(0.0, 0.5, size=shape) for name, shape in SHAPES.items()}
            for _ in range(STEPS)]


def run_ours(optimizer):
    params = initial_params()
    for noise in noises():
        grads = {name: params[name] + noise[name] for name in params}
        optimizer.step(params, grads)
    return params


def assert_trajectories_match(ours, theirs):
    for name in SHAPES:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=RTOL, atol=0,
                                   err_msg=f"tensor {name}")


def run_torch(make_optimizer, per_step_lr):
    torch = pytest.importorskip("torch")
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
               for k, v in initial_params().items()}
    opt = make_optimizer(list(tensors.values()))
    for t, noise in enumerate(noises()):
        for name, p in tensors.items():
            p.grad = p.detach().clone() + torch.tensor(noise[name], dtype=torch.float64)
        for group in opt.param_groups:
            group["lr"] = per_step_lr(t)
        opt.step()
    return {k: v.detach().numpy() for k, v in tensors.items()}


def test_sgd_pytorch_form_matches_torch_optim_sgd():
    torch = pytest.importorskip("torch")
    theirs = run_torch(lambda ps: torch.optim.SGD(ps, lr=1.0, momentum=0.9, weight_decay=5e-4),
                       SCHEDULE)
    ours = run_ours(SGD(SCHEDULE, momentum=0.9, weight_decay=5e-4, form="pytorch"))
    assert_trajectories_match(ours, theirs)


def test_sgd_pytorch_form_matches_torch_nesterov_and_dampening():
    torch = pytest.importorskip("torch")
    theirs = run_torch(lambda ps: torch.optim.SGD(ps, lr=1.0, momentum=0.8, dampening=0.3,
                                                  weight_decay=1e-3), SCHEDULE)
    ours = run_ours(SGD(SCHEDULE, momentum=0.8, dampening=0.3, weight_decay=1e-3, form="pytorch"))
    assert_trajectories_match(ours, theirs)
    theirs = run_torch(lambda ps: torch.optim.SGD(ps, lr=1.0, momentum=0.9, nesterov=True,
                                                  weight_decay=1e-3), SCHEDULE)
    ours = run_ours(SGD(SCHEDULE, momentum=0.9, nesterov=True, weight_decay=1e-3, form="pytorch"))
    assert_trajectories_match(ours, theirs)


def test_sgd_paper_form_differs_from_torch_when_gamma_changes():
    torch = pytest.importorskip("torch")
    theirs = run_torch(lambda ps: torch.optim.SGD(ps, lr=1.0, momentum=0.9), SCHEDULE)
    ours = run_ours(SGD(SCHEDULE, momentum=0.9, weight_decay=0.0, form="paper"))
    assert not np.allclose(ours["fc.w"], theirs["fc.w"], rtol=1e-6)


@pytest.mark.parametrize("nesterov", [False, True])
def test_pytorch_optimizer_lars_matches_its_preset(nesterov):
    lars_module = pytest.importorskip("pytorch_optimizer.optimizer.lars")
    make = lambda ps: lars_module.LARS(ps, lr=1.0, weight_decay=5e-3, momentum=0.9,  # noqa: E731
                                       trust_coefficient=0.02, nesterov=nesterov)
    theirs = run_torch(make, SCHEDULE)
    ours = run_ours(build_preset("pytorch_optimizer", SCHEDULE, momentum=0.9, weight_decay=5e-3,
                                 eta=0.02, nesterov=nesterov))
    assert_trajectories_match(ours, theirs)


def run_optax(weight_decay, eta, momentum, nesterov=False):
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    solver = optax.lars(lambda count: SCHEDULE(int(count)), weight_decay=weight_decay,
                        trust_coefficient=eta, momentum=momentum, nesterov=nesterov)
    params = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in initial_params().items()}
    state = solver.init(params)
    for noise in noises():
        grads = {k: params[k] + jnp.asarray(noise[k]) for k in params}
        updates, state = solver.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return {k: np.asarray(v) for k, v in params.items()}


@pytest.mark.parametrize("nesterov", [False, True])
def test_optax_lars_matches_optax_preset(nesterov):
    theirs = run_optax(weight_decay=5e-3, eta=0.02, momentum=0.9, nesterov=nesterov)
    assert theirs["fc.w"].dtype == np.float64
    ours = run_ours(build_preset("optax", SCHEDULE, momentum=0.9, weight_decay=5e-3, eta=0.02,
                                 nesterov=nesterov))
    assert_trajectories_match(ours, theirs)


def test_optax_with_zero_weight_decay_equals_the_paper_rule_with_ratio_one():
    """optax.lars with beta = 0 is Algorithm 1 with the ratio-one zero-norm rule."""
    theirs = run_optax(weight_decay=0.0, eta=0.02, momentum=0.9)
    ours = run_ours(build_preset("nvcaffe_2017", SCHEDULE, momentum=0.9, weight_decay=0.0,
                                 eta=0.02))
    assert_trajectories_match(ours, theirs)


def test_timm_lars_matches_timm_preset():
    """Bonus oracle: only when timm is installed (``pip install timm --no-deps``)."""
    timm_lars = pytest.importorskip("timm.optim.lars")
    make = lambda ps: timm_lars.Lars(ps, lr=1.0, momentum=0.9, weight_decay=5e-3,  # noqa: E731
                                     trust_coeff=0.02)
    theirs = run_torch(make, SCHEDULE)
    ours = run_ours(build_preset("timm", SCHEDULE, momentum=0.9, weight_decay=5e-3, eta=0.02))
    assert_trajectories_match(ours, theirs)

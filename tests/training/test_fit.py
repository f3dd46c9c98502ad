"""fit: it learns, it takes every kind of data, regularizers enter the loss, and it fails loudly."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import ctflows
from ctflows.core import Chain, Flow, StandardNormal
from ctflows.errors import ConfigurationError, DataError, TrainingError
from ctflows.linear import ActNorm
from ctflows.models import cnf
from ctflows.training import History, evaluate, fit, load, save
from ctflows.training.data_source import batch_stream, make_generator
from training.fakes import CorrelatedGaussian, ElementwiseAffine, Exploding, Flaky, LazyAffine, Penalized, affine_flow
from training.progress_bar import renders


def test_fit_recovers_the_best_diagonal_gaussian():
    # The best N(loc, diag s²) under KL(p‖q) matches the mean and the marginal variances; its NLL is
    # H(p) + KL_min, which a correct loop must reach.
    torch.manual_seed(0)
    p = CorrelatedGaussian()
    flow = affine_flow()
    history = fit(flow, p, steps=400, batch_size=256, lr=3e-2, seed=0, eval_data=p, eval_samples=20000)
    layer = flow.transform
    assert torch.allclose(layer.loc.detach().double(), p.mean, atol=0.06)
    scale = layer.log_scale.detach().double().exp()
    assert torch.allclose(scale, torch.diagonal(p.cov).sqrt(), rtol=0.04)
    best = p.entropy() + p.kl_to_diagonal(p.mean, torch.diagonal(p.cov).sqrt())
    final = history.evals[-1]
    assert final["step"] == 400 and final["exact"]
    assert abs(final["nll"] - best) < 0.02 + 4 * final["nll_se"]
    assert history.nll[0] > best + 0.3  # it did learn something
    assert len(history.losses) == len(history.lr) == len(history.grad_norm) == 400


def test_same_seed_same_run():
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        runs.append(fit(affine_flow(), CorrelatedGaussian(), steps=20, batch_size=32, seed=5).losses)
    assert runs[0] == runs[1]


def test_fit_on_a_tensor_and_a_dataloader():
    x = CorrelatedGaussian().sample(2000, generator=torch.Generator().manual_seed(0))
    for data in (x, DataLoader(TensorDataset(x), batch_size=128, shuffle=True)):
        flow = affine_flow()
        history = fit(flow, data, steps=300, batch_size=128, lr=3e-2, seed=0)
        assert torch.allclose(flow.transform.loc.detach(), x.mean(0), atol=0.1)
        assert history.nll[-1] < history.nll[0] - 0.3


def test_fit_conditional_pairs():
    # x = 2c + 0.5 ε: a conditional shift must learn weight ≈ 2 and scale ≈ 0.5.
    g = torch.Generator().manual_seed(0)
    c = torch.randn(4000, 1, generator=g)
    x = 2 * c + 0.5 * torch.randn(4000, 1, generator=g)
    for data in ((x, c), DataLoader(TensorDataset(x, c), batch_size=256, shuffle=True)):
        flow = affine_flow(features=1, context_features=1)
        fit(flow, data, steps=400, batch_size=256, lr=5e-2, seed=0)
        assert abs(float(flow.transform.weight.detach()) - 2.0) < 0.1
        assert abs(float(flow.transform.log_scale.detach().exp()) - 0.5) < 0.05


def test_regularization_weight_enters_the_gradient():
    # loss = NLL + w‖loc‖², so the gradient differs by exactly 2w·loc from the unregularized one.
    w = 0.7
    grads = {}
    for weight in (0.0, w):
        torch.manual_seed(0)
        flow = affine_flow(Penalized)
        with torch.no_grad():
            flow.transform.loc.copy_(torch.tensor([0.3, -1.2]))
        history = fit(flow, CorrelatedGaussian(), steps=1, batch_size=64, clip_grad=None, seed=3, regularization={"penalty": weight})
        grads[weight] = flow.transform.loc.grad.clone()
    assert torch.allclose(grads[w] - grads[0.0], 2 * w * torch.tensor([0.3, -1.2]), atol=1e-6)
    assert history.regularization["penalty"][0] == pytest.approx(0.3**2 + 1.2**2, rel=1e-6)
    assert history.counts["nfe_forward"] == [3]
    assert history.losses[0] == pytest.approx(history.nll[0] + w * history.regularization["penalty"][0], rel=1e-6)


class TwoPenalties(Penalized):
    """Reports a second term, ``spread = ‖log_scale‖²``, beside Penalized's ``penalty = ‖loc‖²``."""

    def _forward(self, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        out = super()._forward(x, context)
        self.stats["regularization"]["spread"] = (self.log_scale**2).sum()
        return out


def test_each_regularization_term_is_recorded_under_its_own_name():
    """With two terms, each series holds its own term's value (known in closed form at step 1) and the loss
    weighs each by its own weight."""
    flow = affine_flow(TwoPenalties)
    flow.load_state_dict({"transform.loc": torch.tensor([0.3, -1.2]), "transform.log_scale": torch.tensor([0.2, -0.1])})
    weights = {"penalty": 0.5, "spread": 2.0}
    history = fit(flow, CorrelatedGaussian(), steps=1, batch_size=16, seed=0, regularization=weights)
    values = {"penalty": 0.3**2 + 1.2**2, "spread": 0.2**2 + 0.1**2}
    for name, value in values.items():
        assert history.regularization[name] == [pytest.approx(value, rel=1e-6)]
    assert history.losses[0] == pytest.approx(history.nll[0] + sum(weights[k] * values[k] for k in values), rel=1e-6)


@pytest.mark.parametrize("weight", [0.5, np.float32(0.5), torch.tensor(0.5)], ids=["float", "numpy", "tensor"])
def test_regularization_gradient_matches_manual_loss(weight):
    torch.manual_seed(0)
    flow = affine_flow(Penalized)
    data = CorrelatedGaussian()
    fit(flow, data, steps=1, batch_size=64, clip_grad=None, seed=3, lr=1e-9, regularization={"penalty": weight})
    x, _ = next(batch_stream(data, 64, generator=_seeded_after_eval_seed(3), device=torch.device("cpu"), dtype=torch.float32))
    manual = affine_flow(Penalized)
    loss = -manual.log_prob(x).mean() + 0.5 * (manual.transform.loc**2).sum()
    loss.backward()
    assert torch.allclose(flow.transform.log_scale.grad, manual.transform.log_scale.grad, atol=1e-6)
    assert torch.allclose(flow.transform.loc.grad, manual.transform.loc.grad, atol=1e-6)


def _seeded_after_eval_seed(seed: int) -> torch.Generator:
    # fit draws one number (the evaluation seed) before the first batch.
    g = make_generator(seed)
    torch.randint(2**62, (1,), generator=g)
    return g


def test_unknown_regularization_name_is_an_error():
    with pytest.raises(ConfigurationError, match="kinetic_energy.*reported: \\['penalty'\\]"):
        fit(affine_flow(Penalized), CorrelatedGaussian(), steps=3, regularization={"kinetic_energy": 0.1})
    with pytest.raises(ConfigurationError, match="reported: none"):
        fit(affine_flow(), CorrelatedGaussian(), steps=3, regularization={"kinetic_energy": 0.1})


def test_nonfinite_loss_raises_naming_the_step():
    flow = affine_flow(Exploding)
    before = [p.detach().clone() for p in flow.parameters()]
    with pytest.raises(TrainingError, match=r"step 1 of 5.*lower learning rate"):
        fit(flow, CorrelatedGaussian(), steps=5, on_nonfinite="raise")
    assert all(torch.equal(a, b) for a, b in zip(before, flow.parameters()))


def test_cosine_schedule_ends_near_zero_and_warmup_ramps():
    history = fit(affine_flow(), CorrelatedGaussian(), steps=100, batch_size=16, lr=1e-2, warmup=10)
    assert history.lr[0] == pytest.approx(1e-3)
    assert history.lr[9] == pytest.approx(1e-2)
    assert history.lr[-1] < 1e-2 * 1e-3
    assert all(a >= b for a, b in zip(history.lr[10:], history.lr[11:]))
    constant = fit(affine_flow(), CorrelatedGaussian(), steps=10, batch_size=16, lr=1e-2, schedule="constant", warmup=0)
    assert constant.lr == [1e-2] * 10


def test_progress_false_prints_nothing(capsys):
    fit(affine_flow(), CorrelatedGaussian(), steps=5, batch_size=8, progress=False)
    fit(affine_flow(), CorrelatedGaussian(), steps=5, batch_size=8)  # stderr is not a terminal under pytest
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_progress_bar_shows_loss_and_nfe(capsys):
    fit(affine_flow(Penalized), CorrelatedGaussian(), steps=5, batch_size=8, progress=True)
    err = capsys.readouterr().err
    assert "loss=" in err and "nfe_forward=3" in err and "step" in err


@pytest.mark.parametrize("held_out", ["density", "points"])
def test_the_progress_bar_ends_at_the_last_step_showing_the_latest_evaluation(capsys, held_out):
    """Every step moves the bar one step of ``steps``, and it shows the last evaluation's KL (a density) or NLL."""
    p = CorrelatedGaussian()
    eval_data = p if held_out == "density" else p.sample(50, generator=torch.Generator().manual_seed(0))
    history = fit(affine_flow(), p, steps=5, batch_size=8, progress=True, eval_data=eval_data, eval_every=2, eval_samples=100)
    last = renders(capsys.readouterr().err)[-1]
    assert "5/5" in last and history.evals[-1]["step"] == 5
    key, name = ("kl", "kl") if held_out == "density" else ("nll", "test_nll")
    assert f"{name}={history.evals[-1][key]:.4f}" in last


def test_progress_none_shows_the_bar_on_a_terminal(capsys, monkeypatch):
    """``progress=None`` draws the bar when stderr is a terminal (pytest's captured stderr is not one)."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    fit(affine_flow(), CorrelatedGaussian(), steps=3, batch_size=8)
    assert "3/3" in capsys.readouterr().err


class ModeRecording(ElementwiseAffine):
    """Notes, at each forward, whether it is in training mode and whether autograd is recording."""

    def __init__(self, features: int) -> None:
        super().__init__(features)
        self.seen: list[tuple[bool, bool]] = []

    def _forward(self, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen.append((self.training, torch.is_grad_enabled()))
        return super()._forward(x, context)


def test_the_initialising_pass_runs_in_train_mode_without_grad_and_every_step_in_train_mode():
    """As documented: the first pass is in ``train()`` mode under ``no_grad``; each step trains in train mode even
    when the flow was handed over, or left by the callback, in eval mode (as a callback that samples would)."""
    flow = Flow(ModeRecording(2), StandardNormal(2)).eval()

    def leave_in_eval_mode(step: int, history: History) -> None:
        flow.eval()

    fit(flow, CorrelatedGaussian(), steps=3, batch_size=8, seed=0, callback=leave_in_eval_mode)
    assert flow.transform.seen == [(True, False)] + [(True, True)] * 3


def test_a_model_with_no_trainable_parameters_is_refused():
    flow = affine_flow()
    flow.requires_grad_(False)
    with pytest.raises(ConfigurationError, match="^fit: the model has no trainable parameters"):
        fit(flow, CorrelatedGaussian(), steps=2, batch_size=8)


def test_an_adjoint_cnfs_backward_solve_is_counted_at_its_step():
    """The counts are read after the backward pass, so an adjoint CNF's ``nfe_backward`` is in every step's record."""
    history = fit(cnf(2, (8,), seed=0), CorrelatedGaussian(), steps=2, batch_size=16, seed=0)
    assert len(history.counts["nfe_backward"]) == 2 and all(n > 0 for n in history.counts["nfe_backward"])


def test_lazily_created_parameters_are_trained():
    flow = Flow(LazyAffine(), StandardNormal(2))
    fit(flow, CorrelatedGaussian(), steps=200, batch_size=128, lr=5e-2, seed=0)
    assert torch.allclose(flow.transform.loc.detach().double(), CorrelatedGaussian().mean, atol=0.1)


def test_evaluations_and_callback_stop():
    seen = []

    def callback(step: int, history: History) -> bool:
        seen.append(step)
        return step == 7

    p = CorrelatedGaussian()
    history = fit(affine_flow(), p, steps=50, batch_size=16, eval_data=p, eval_every=3, eval_samples=500, callback=callback)
    assert seen == list(range(1, 8)) and history.steps == 7
    assert [e["step"] for e in history.evals] == [3, 6, 7]
    d = history.to_dict()
    assert d["steps"] == 7 and set(d["evals"][0]) >= {"nll", "nll_se", "kl", "kl_se", "exact", "time"}
    assert all(e["n"] == 500 for e in history.evals)  # eval_samples points, as asked
    assert history.wall_time > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [({"steps": 0}, "steps must be an int >= 1, got 0"), ({"batch_size": -1}, "batch_size must be an int >= 1, got -1"),
     ({"lr": 0.0}, "lr must be a positive number, got 0.0"), ({"schedule": "linear"}, "schedule must be one of .*got 'linear'"),
     ({"warmup": 10, "steps": 10}, r"warmup must be an int in \[0, steps=10\)"),
     # a negative count shifted the cosine, 1.0 made the whole run a warm-up, True was read as one step
     ({"warmup": -1, "steps": 10}, r"warmup must be an int in \[0, steps=10\) .*got -1"),
     ({"warmup": 1.0}, r"warmup must be an int step count or a fraction in \[0, 1\), got 1.0"),
     ({"warmup": True}, r"warmup must be an int step count or a fraction in \[0, 1\), got True"),
     ({"eval_every": 5}, "eval_every is set but eval_data is None"),
     ({"optimizer": "lbfgs"}, "optimizer must be one of .*got 'lbfgs'"),
     ({"clip_grad": 0}, "clip_grad must be a positive number or None, got 0"),
     ({"regularization": {"penalty": math.nan}}, "the regularization weight for 'penalty' must be a finite number, got nan"),
     # True used to be read as the weight 1.0
     ({"regularization": {"penalty": True}}, "the regularization weight for 'penalty' must be a finite number, got True"),
     # these used to reach torch, or Python, as they were: a raw ValueError, TypeError or AttributeError
     ({"weight_decay": -1.0}, "weight_decay must be a finite number >= 0, got -1.0"),
     ({"weight_decay": math.nan}, "weight_decay must be a finite number >= 0, got nan"),
     ({"clip_grad": "1"}, "clip_grad must be a positive number or None, got '1'"),
     ({"seed": "a"}, "seed must be a whole number from 0 to 2\\^63 - 1, or None, got 'a'"),
     ({"seed": 2**70}, "seed must be a whole number .*got 1180591620717411303424"),
     ({"regularization": ["kinetic_energy"]}, "regularization must map names to weights.*got list"),
     # a KeyError, or "'int' object is not callable" at the first step, said neither what was wrong nor the choices
     ({"objective": "nll"}, r"objective must be one of \['flow_matching', 'likelihood'\] or a callable, got 'nll'"),
     ({"objective": 3}, "objective must be a name or a callable, got int"),
     ({"on_nonfinite": "ignore"}, r"on_nonfinite must be one of \('skip', 'restore', 'raise'\), got 'ignore'"),
     ({"max_bad_steps": 0}, "max_bad_steps must be an int >= 1, got 0"),
     ({"max_bad_steps": True}, "max_bad_steps must be an int >= 1, got True")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ConfigurationError, match="^fit: " + message):  # named by the function the user called
        fit(affine_flow(), CorrelatedGaussian(), **kwargs)


def test_training_points_on_a_line_are_refused_before_the_first_pass(tmp_path):
    """Points on a line have no density in R^2: a fit would build a spike whose loss falls without bound, so fit
    refuses them before any forward pass, leaving the model untouched and nothing written; off the line, it trains."""
    t = torch.randn(300, 1, generator=torch.Generator().manual_seed(0))
    flow = affine_flow()
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    for data in (torch.cat([t, 2 * t + 1], dim=1), (torch.cat([t, 2 * t + 1], dim=1), torch.zeros(300, 1))):
        with pytest.raises(DataError, match=r"^fit: the data lie on a hyperplane"):
            fit(flow, data, steps=2, batch_size=16, checkpoint_dir=tmp_path / "run")
    assert all(torch.equal(v, before[k]) for k, v in flow.state_dict().items()) and not (tmp_path / "run").exists()
    off_the_line = torch.cat([t, 2 * t + 1 + 0.1 * torch.randn(300, 1, generator=torch.Generator().manual_seed(1))], dim=1)
    assert fit(flow, off_the_line, steps=2, batch_size=16).steps == 2


def test_a_model_that_is_not_a_flow_is_refused_by_fit_and_evaluate():
    for call in (lambda model: fit(model, CorrelatedGaussian(), steps=1), lambda model: ctflows.evaluate(model, CorrelatedGaussian())):
        for model in (torch.nn.Linear(2, 2), None):
            with pytest.raises(ConfigurationError, match="must be a ctflows Flow.*got (Linear|NoneType)"):
                call(model)


def test_mistakes_that_used_to_surface_after_training_are_refused_before_it(tmp_path):
    steps = []
    taken = lambda step, history: steps.append(step)  # noqa: E731
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ConfigurationError, match="checkpoint_dir .*a_file is a file, not a directory"):
        fit(affine_flow(), CorrelatedGaussian(), steps=2, batch_size=8, checkpoint_dir=tmp_path / "a_file", callback=taken)
    with pytest.raises(ConfigurationError, match="callback must be callable.*got int"):
        fit(affine_flow(), CorrelatedGaussian(), steps=2, batch_size=8, callback=5)
    # a callback of one argument used to fail after the first step, with a TypeError from the call
    with pytest.raises(ConfigurationError, match=r"callback is called as callback\(step, history\).*<lambda>\(step\)"):
        fit(affine_flow(), CorrelatedGaussian(), steps=2, batch_size=8, callback=lambda step: None)
    # a NumPy context used to be read as no context (the pair iterated as two batches)
    with pytest.raises(DataError, match="context is a ndarray, not a torch Tensor; convert it with torch.as_tensor"):
        fit(affine_flow(), (torch.randn(16, 2), np.zeros((16, 3))), steps=2, batch_size=8)
    assert steps == []



@pytest.mark.parametrize(
    "device, message",
    [("bogus", "device 'bogus' is not a device torch knows"), (3, "device must be a string.*got 3"),
     (torch.device("meta"), "device 'meta' holds no data"),
     # on a CPU-only build torch itself raised an AssertionError from inside Module.to
     ("cuda:99", "device 'cuda:99'.*(no CUDA device is available|does not exist)")],
)
def test_a_device_that_cannot_hold_the_model_is_refused_naming_it(device, message):
    flow = affine_flow()
    before = [p.detach().clone() for p in flow.parameters()]
    with pytest.raises(ConfigurationError, match=f"fit: {message}"):
        fit(flow, CorrelatedGaussian(), steps=1, batch_size=8, device=device)
    assert all(torch.equal(a, b) and b.device.type == "cpu" for a, b in zip(before, flow.parameters()))

@pytest.mark.cuda
def test_fit_evaluate_and_checkpoint_on_cuda(tmp_path):
    p = CorrelatedGaussian()
    flow = affine_flow()
    history = fit(flow, p, steps=50, batch_size=64, lr=3e-2, seed=0, device="cuda", eval_data=p, eval_samples=1000)
    assert flow.transform.loc.is_cuda and history.evals[-1]["num_nonfinite"] == 0
    x = p.sample(100, device="cuda")
    assert evaluate(flow, x)["n"] == 100
    save(flow, tmp_path / "m.pt")
    assert torch.equal(load(tmp_path / "m.pt").log_prob(x), flow.log_prob(x))
    on_cpu = load(tmp_path / "m.pt", map_location="cpu")
    assert all(torch.equal(a, b.cpu()) for a, b in zip(on_cpu.parameters(), flow.parameters()))


def test_the_initialising_pass_runs_under_likelihood_and_where_an_actnorm_waits_for_it():
    # A custom objective pays for that pass (a solve, for a CNF) only when a layer needs data to start from.
    def mean_nll(flow, x, context):
        nll = -flow.log_prob(x, context).mean()
        return nll, nll

    for objective, calls in (("likelihood", 2), (mean_nll, 1)):
        flow = Flow(Flaky(2, set()), StandardNormal(2))
        fit(flow, CorrelatedGaussian(), steps=1, batch_size=16, seed=0, objective=objective, progress=False)
        assert flow.transform.calls == calls, objective

    flow = Flow(Chain(ActNorm(2), Flaky(2, set())), StandardNormal(2))
    fit(flow, CorrelatedGaussian(), steps=1, batch_size=16, seed=0, objective=mean_nll, progress=False)
    assert flow.transform.layers[1].calls == 2 and bool(flow.transform.layers[0].initialized)


def test_a_custom_objective_that_cannot_be_called_or_returns_the_wrong_thing_is_named_so():
    # Before: a TypeError from the call, "too many values to unpack", "cannot unpack non-iterable int" and
    # autograd's "element 0 of tensors does not require grad", each at the first step.
    def fails(objective, match):
        with pytest.raises(ConfigurationError, match=match):
            fit(affine_flow(), CorrelatedGaussian(), steps=1, batch_size=8, objective=objective)

    fails(lambda flow, x: 0, r"called as objective\(flow, x, context\).*its signature is <lambda>\(flow, x\)")
    fails(lambda flow, x, c: -flow.log_prob(x), r"it returned a torch.float\d+ tensor of shape \[8\]")
    fails(lambda flow, x, c: (3, None), r"it returned a loss that is int 3")
    fails(lambda flow, x, c: (-flow.log_prob(x), None), r"it returned a loss that is a torch.float\d+ tensor of shape \[8\]")
    fails(lambda flow, x, c: (torch.tensor(3), None), r"it returned a loss that is a torch.int64 tensor of shape \[\]")
    fails(lambda flow, x, c: (-flow.log_prob(x).mean(), None, None), r"it returned tuple \(tensor\(")
    fails(lambda flow, x, c: (torch.tensor(1.0), None), r"a loss with no graph to the parameters")
    # a well-formed custom objective trains
    nll = lambda flow, x, c: (-flow.log_prob(x).mean(), None)  # noqa: E731
    assert fit(affine_flow(), CorrelatedGaussian(), steps=2, batch_size=8, objective=nll).steps == 2


def test_a_custom_objective_is_not_charged_or_credited_with_the_layers_terms():
    # Regularization terms belong to the likelihood objective: a custom one that runs log_prob on a layer that
    # reports a term has its loss as it returned it, and no term is recorded.
    def mean_nll(flow, x, context):
        nll = -flow.log_prob(x, context).mean()
        return nll, nll

    history = fit(affine_flow(Penalized), CorrelatedGaussian(), steps=3, batch_size=16, seed=0, objective=mean_nll)
    assert history.regularization == {}
    assert history.losses == history.nll


def test_a_custom_objective_that_reports_no_nll_has_nan_recorded_for_it():
    """``(loss, None)``: there is no NLL to record, so the history says NaN rather than a number it does not have."""
    def squared_z(flow, x, context):
        return flow.transform(x)[0].square().mean(), None

    history = fit(affine_flow(), CorrelatedGaussian(), steps=3, batch_size=16, seed=0, objective=squared_z)
    assert len(history.nll) == 3 and all(math.isnan(v) for v in history.nll)
    assert all(math.isfinite(v) for v in history.losses)

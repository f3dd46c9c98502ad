"""Crash and resume: a run killed with SIGKILL — between steps or halfway through writing a checkpoint —
and resumed ends with the same parameters, to the bit, as a run that was never interrupted."""
from __future__ import annotations

import importlib
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ctflows.continuous import FlowMatching
from ctflows.core import Flow, StandardNormal
from ctflows.errors import CheckpointError, ConfigurationError
from ctflows.models import cnf
from ctflows.training import fit, load
from ctflows.training.checkpoint import read_metadata
from ctflows.training.schedule import Schedule
from ctflows.training.training_state import read_state, write_state
from training.fakes import CorrelatedGaussian, ElementwiseAffine, Penalized, affine_flow
from training.progress_bar import renders
from training.recorded_writes import record_state_writes
from training.same_parameters import assert_same_parameters

WORKER = Path(__file__).with_name("train_worker.py")


def run_worker(*args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parents[2])}
    return subprocess.run([sys.executable, str(WORKER), *args], capture_output=True, text=True, timeout=240, env=env)


def empty(directory: Path) -> None:
    """Remove the files an uninterrupted reference run left, so the interrupted run starts from nothing."""
    for path in directory.iterdir():
        path.unlink()


def params(directory: Path) -> dict[str, torch.Tensor]:
    return torch.load(directory / "params.pt", weights_only=True)


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resuming"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, torch.Tensor]:
    out = tmp_path_factory.mktemp("reference")
    done = run_worker("--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    return params(out)


@pytest.mark.parametrize("kill", [["--kill-at-step", "13"], ["--kill-in-write", "4"]], ids=["between-steps", "mid-write"])
def test_sigkilled_run_resumes_to_identical_parameters(tmp_path, kill, uninterrupted):

    checkpoint = tmp_path / "checkpoint"
    killed = run_worker("--out", str(tmp_path / "killed"), "--checkpoint", str(checkpoint), *kill)
    assert killed.returncode == -9, killed.stderr[-2000:]  # really killed, mid-run
    assert not (tmp_path / "killed").exists()
    resumed = run_worker("--out", str(tmp_path / "resumed"), "--checkpoint", str(checkpoint), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_bitwise_equal(uninterrupted, params(tmp_path / "resumed"))
    assert not list(checkpoint.glob(".*.tmp")), "a half-written temporary file was left behind"
    load(checkpoint / "model.pt")  # the user-facing checkpoint is loadable too


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_resume_in_process_matches_and_continues_the_history(tmp_path, device):
    def run(steps_before_stop: int | None, resume: bool):
        torch.manual_seed(0)
        flow = affine_flow()
        stop = (lambda step, h: step == steps_before_stop) if steps_before_stop else None
        history = fit(flow, CorrelatedGaussian(), steps=30, batch_size=32, seed=1, callback=stop, device=device,
                      checkpoint_dir=tmp_path, checkpoint_every=7, resume=resume)
        return flow, history

    whole, whole_history = run(None, resume=False)
    empty(tmp_path)
    run(11, resume=False)  # stops early (a checkpoint is written when it stops)
    # As a state written before History had trained_seconds, and with a time no fresh run could have:
    state = read_state(tmp_path)
    state["trained_seconds"] = 1000.0
    del state["history"]["trained_seconds"]
    state["history"]["wall_time"] = 2000.0
    write_state(tmp_path, state)
    resumed, history = run(None, resume=True)
    assert history.losses == whole_history.losses and history.steps == 30
    assert 1000.0 < history.trained_seconds < 1000.0 + history.wall_time  # the first segment's time is carried on
    assert 2000.0 < history.wall_time < 2000.0 + history.trained_seconds  # and so is its wall time
    assert_same_parameters(whole, resumed)


def test_a_cnf_with_warm_started_solves_resumes_to_identical_parameters(tmp_path):
    """Its adaptive solves start from the first steps earlier iterations accepted; the training state keeps them."""
    def run(stop_at: int | None, resume: bool):
        torch.manual_seed(0)
        flow = cnf(2, (16, 16), activation="tanh", end_time=0.5, learn_end_time=True)
        stop = (lambda step, h: step == stop_at) if stop_at else None
        fit(flow, CorrelatedGaussian(), steps=10, batch_size=64, seed=1, callback=stop, checkpoint_dir=tmp_path, resume=resume)
        return flow

    whole = run(None, resume=False)
    empty(tmp_path)
    run(4, resume=False)
    assert read_state(tmp_path)["first_steps"]  # the CNF's memory is in the checkpoint
    resumed = run(None, resume=True)
    assert_same_parameters(whole, resumed)


def test_resume_refuses_a_run_with_other_settings(tmp_path):
    fit(affine_flow(), CorrelatedGaussian(), steps=5, batch_size=16, seed=0, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigurationError, match=r"cannot resume.*batch_size: 16 then, 32 now"):
        fit(affine_flow(), CorrelatedGaussian(), steps=5, batch_size=32, seed=0, checkpoint_dir=tmp_path, resume=True)


def custom_nll(flow, x, context):
    nll = -flow.log_prob(x, context).mean()
    return nll, nll


@pytest.mark.parametrize(
    "then, now, message",
    [({}, {"objective": custom_nll}, "objective: 'MaximumLikelihood()' then, 'custom_nll' now"),
     ({"objective": "flow_matching"}, {"objective": FlowMatching(coupling="independent")},
      "objective: \"FlowMatching(coupling='ot', sigma=0.0, times='uniform')\" then, \"FlowMatching(coupling='independent'"),
     ({}, {"optimizer": "adam"}, "optimizer: 'AdamW' then, 'Adam' now"),
     ({"clip_grad": 1.0}, {"clip_grad": 100.0}, "clip_grad: 1.0 then, 100.0 now"),
     ({"regularization": {"penalty": 0.1}}, {"regularization": {"penalty": 0.2}}, "regularization: {'penalty': 0.1} then, {'penalty': 0.2} now"),
     # the learning rates of the steps left would follow another curve than the one the first steps took
     ({"warmup": 2}, {"warmup": 3}, "warmup: 2 then, 3 now"),
     ({}, {"schedule": "constant"}, "schedule: 'cosine' then, 'constant' now")],
)
def test_resume_refuses_another_objective_optimizer_clipping_regularization_or_schedule(tmp_path, then, now, message):
    # Each of these was accepted and changed the rest of the run, unlike the same call started again.
    settings = dict(steps=6, batch_size=16, seed=0, checkpoint_dir=tmp_path, progress=False)
    model = (lambda: cnf(2, hidden=(8,), seed=0)) if "objective" in then else (lambda: affine_flow(Penalized))  # FM: a CNF
    fit(model(), CorrelatedGaussian(), callback=lambda step, history: step == 3, **settings, **then)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        fit(model(), CorrelatedGaussian(), resume=True, **settings, **now)
    # The same settings spelled another way: an equal weight of another type, the optimizer's name in capitals,
    # the objective's object for its name, a warm-up's steps as a fraction.
    again = {**then, "optimizer": "ADAMW"}
    if then.get("objective") == "flow_matching":
        again["objective"] = FlowMatching()
    if "regularization" in again:
        again["regularization"] = {"penalty": np.float64(0.1)}
    if "warmup" in again:  # the same warm-up as a fraction of the 6 steps
        again["warmup"] = then["warmup"] / 6
    assert fit(model(), CorrelatedGaussian(), resume=True, **settings, **again).steps == 6


def test_resume_rejects_a_foreign_file(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "training_state.pt")
    with pytest.raises(CheckpointError, match="not a ctflows training state"):
        fit(affine_flow(), CorrelatedGaussian(), steps=5, batch_size=16, checkpoint_dir=tmp_path, resume=True)


def test_checkpointing_needs_a_directory():
    with pytest.raises(ConfigurationError, match="need a checkpoint_dir"):
        fit(affine_flow(), CorrelatedGaussian(), steps=5, checkpoint_every=2)


def test_ctrl_c_between_steps_leaves_a_checkpoint_to_resume_from(tmp_path):
    def interrupt(step, history):
        if step == 9:
            raise KeyboardInterrupt

    def run(callback, resume):
        torch.manual_seed(0)
        flow = affine_flow()
        fit(flow, CorrelatedGaussian(), steps=20, batch_size=32, seed=2, callback=callback,
            checkpoint_dir=tmp_path / "run", resume=resume)  # no checkpoint_every: only Ctrl-C writes mid-run
        return flow

    with pytest.raises(KeyboardInterrupt):
        run(interrupt, resume=False)
    saved = read_state(tmp_path / "run")
    assert saved["step"] == 9  # written on the way out, at the last whole step
    assert saved["history"]["wall_time"] >= saved["trained_seconds"] > 0  # with the time the run took so far
    resumed = run(None, resume=True)
    empty(tmp_path / "run")
    whole = run(None, resume=False)
    assert_same_parameters(whole, resumed)


def test_resume_without_a_seed_continues_the_run_it_finds(tmp_path):
    # seed=None draws a seed; resuming with the same call (seed still None) must take the saved one and
    # end where an uninterrupted run with that seed ends.
    def run(directory: Path, resume: bool, stop_at: int | None, seed: int | None = None, global_seed: int = 0):
        torch.manual_seed(0)
        flow = affine_flow()
        torch.manual_seed(global_seed)  # what a seed=None call would draw from
        stop = (lambda step, h: step == stop_at) if stop_at else None
        return fit(flow, CorrelatedGaussian(), steps=12, batch_size=16, seed=seed, callback=stop,
                   checkpoint_dir=directory, resume=resume, progress=False)

    run(tmp_path / "a", resume=False, stop_at=5)
    drawn = int(read_state(tmp_path / "a")["config"]["seed"])
    resumed = run(tmp_path / "a", resume=True, stop_at=None, global_seed=1)  # a new process would draw anew
    whole = run(tmp_path / "b", resume=False, stop_at=None, seed=drawn)
    assert resumed.steps == 12 and resumed.losses == whole.losses


def test_resume_refuses_another_weight_decay(tmp_path):
    fit(affine_flow(), CorrelatedGaussian(), steps=3, batch_size=16, seed=0, weight_decay=0.0, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigurationError, match=r"weight_decay: 0.0 then, 0.5 now"):
        fit(affine_flow(), CorrelatedGaussian(), steps=6, batch_size=16, seed=0, weight_decay=0.5, checkpoint_dir=tmp_path, resume=True)


class Interrupt:
    """An evaluation stand-in that raises KeyboardInterrupt on the given calls and evaluates otherwise."""

    def __init__(self, real, fail_on: set[int]) -> None:
        self.real, self.fail_on, self.calls = real, fail_on, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls in self.fail_on:
            raise KeyboardInterrupt
        return self.real(*args, **kwargs)


@pytest.mark.parametrize(
    "steps, fail_on, evaluated",
    [(8, {2}, [2, 4, 6, 8]), (8, {4}, [2, 4, 6, 8]), (7, {4}, [2, 4, 6, 7])],
    ids=["mid-run", "final", "final-off-cadence"],  # the last: a resumed run with no step left to take
)
def test_an_evaluation_cut_short_is_done_when_the_run_resumes(tmp_path, monkeypatch, steps, fail_on, evaluated):
    fit_module = importlib.import_module("ctflows.training.fit")
    real = fit_module.evaluate
    held_out = CorrelatedGaussian().sample(200, generator=torch.Generator().manual_seed(3))
    options = dict(steps=steps, batch_size=16, seed=0, eval_data=held_out, eval_every=2, eval_samples=200, checkpoint_dir=tmp_path)
    monkeypatch.setattr(fit_module, "evaluate", Interrupt(real, fail_on))
    with pytest.raises(KeyboardInterrupt):
        fit(affine_flow(), CorrelatedGaussian(), **options)
    monkeypatch.setattr(fit_module, "evaluate", real)
    history = fit(affine_flow(), CorrelatedGaussian(), **options, resume=True)
    assert [e["step"] for e in history.evals] == evaluated


def test_evaluation_settings_are_checked_before_training_and_an_error_after_a_step_keeps_the_work(tmp_path):
    x = CorrelatedGaussian().sample(100, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigurationError, match="eval_samples must be an int >= 1"):
        fit(affine_flow(), x, steps=3, batch_size=16, eval_data=x, eval_samples=0)
    with pytest.raises(ConfigurationError, match=r"eval_data has points of shape \[3\]"):
        fit(affine_flow(), x, steps=3, batch_size=16, eval_data=torch.randn(10, 3))

    def broken(step, history):
        if step == 4:
            raise ValueError("a bug in the user's callback")

    with pytest.raises(ValueError, match="user's callback"):
        fit(affine_flow(), x, steps=10, batch_size=16, seed=0, callback=broken, checkpoint_dir=tmp_path)
    assert read_state(tmp_path)["step"] == 4  # the four applied steps were written before the error went up


class _NoisyAffine(ElementwiseAffine):
    """Jitters its input in training with torch's, Python's and NumPy's global generators (as dropout or a
    stochastic layer would), so that a resumed run matches only if all three are put back."""

    def _forward(self, x, context):
        if self.training:
            jitter = 0.1 * torch.randn_like(x) + 0.1 * random.gauss(0.0, 1.0) + 0.1 * float(np.random.normal())
            x = x + jitter
        return super()._forward(x, context)


def test_a_run_that_draws_from_the_global_generators_resumes_to_identical_parameters(tmp_path):
    def run(stop_at: int | None, resume: bool, global_seed: int):
        torch.manual_seed(global_seed), random.seed(global_seed), np.random.seed(global_seed)
        flow = Flow(_NoisyAffine(2), StandardNormal(2))
        stop = (lambda step, h: step == stop_at) if stop_at else None
        fit(flow, CorrelatedGaussian(), steps=12, batch_size=32, seed=1, lr=1e-2, callback=stop,
            checkpoint_dir=tmp_path, resume=resume)
        return flow

    whole = run(None, resume=False, global_seed=0)
    empty(tmp_path)
    run(5, resume=False, global_seed=0)
    resumed = run(None, resume=True, global_seed=123)  # a new process would start its generators elsewhere
    assert_same_parameters(whole, resumed)


@pytest.mark.parametrize("loader", [False, True], ids=["tensor", "loader"])
def test_a_run_on_rows_resumed_mid_epoch_matches_an_uninterrupted_one(tmp_path, loader):
    # 50 rows in batches of 16: the stop after step 5 falls inside the second pass over the rows.
    x = CorrelatedGaussian().sample(50, generator=torch.Generator().manual_seed(0))
    data = DataLoader(TensorDataset(x), batch_size=16) if loader else x  # the loader's order is fixed

    def run(stop_at: int | None, resume: bool):
        flow = affine_flow()
        stop = (lambda step, h: step == stop_at) if stop_at else None
        history = fit(flow, data, steps=12, batch_size=16, seed=1, lr=1e-2, callback=stop, checkpoint_dir=tmp_path,
                      resume=resume)
        return flow, history

    whole, whole_history = run(None, resume=False)
    empty(tmp_path)
    run(5, resume=False)
    resumed, history = run(None, resume=True)
    assert history.losses == whole_history.losses
    assert_same_parameters(whole, resumed)


def test_a_ctrl_c_before_the_first_step_leaves_nothing_that_would_resume_on_the_wrong_batch(tmp_path, monkeypatch):
    # fit draws its first batch before the loop (for data-initialised layers); an interrupt between that draw and
    # step 1 must not save a step-0 state whose stream is already past that batch: resuming from it trained
    # step 1 on the second batch. With nothing trained there is nothing to save, and resume starts afresh.

    def run(resume: bool):
        flow = affine_flow()
        history = fit(flow, CorrelatedGaussian(), steps=5, batch_size=16, seed=1, checkpoint_dir=tmp_path, resume=resume)
        return flow, history

    whole, whole_history = run(resume=False)
    empty(tmp_path)
    real = Schedule.exhausted

    def interrupted(self, *args):
        monkeypatch.setattr(Schedule, "exhausted", real)
        raise KeyboardInterrupt  # as if Ctrl-C arrived as the loop began

    monkeypatch.setattr(Schedule, "exhausted", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(resume=False)
    assert not (tmp_path / "training_state.pt").exists()
    resumed, history = run(resume=True)
    assert history.losses == whole_history.losses
    assert_same_parameters(whole, resumed)


@pytest.mark.parametrize("rows", [10, 60])
def test_resume_on_other_data_rows_than_the_run_started_with_is_refused(tmp_path, rows):
    settings = dict(steps=3, batch_size=16, seed=0, checkpoint_dir=tmp_path, checkpoint_every=1, progress=False)
    fit(affine_flow(), torch.randn(40, 2), callback=lambda step, history: step == 2, **settings)
    # fewer rows: an IndexError at a later batch before; more: the saved order went on over the old rows only
    with pytest.raises(ConfigurationError, match=rf"other settings \(rows: 40 then, {rows} now\)"):
        fit(affine_flow(), torch.randn(rows, 2), resume=True, **settings)
    assert fit(affine_flow(), torch.randn(40, 2), resume=True, **settings).steps == 3  # as many rows: resumes


def test_an_infinite_clip_grad_resumes_a_run_without_clipping_and_a_finite_one_does_not(tmp_path):
    settings = dict(steps=3, batch_size=16, seed=0, checkpoint_dir=tmp_path, checkpoint_every=1, progress=False)
    data = torch.randn(40, 2)
    fit(affine_flow(), data, clip_grad=None, callback=lambda step, history: step == 2, **settings)
    with pytest.raises(ConfigurationError, match=r"other settings \(clip_grad: None then, 5\.0 now\)"):
        fit(affine_flow(), data, clip_grad=5.0, resume=True, **settings)
    assert fit(affine_flow(), data, clip_grad=float("inf"), resume=True, **settings).steps == 3  # the same setting


def test_checkpoints_are_written_every_checkpoint_every_steps_and_once_at_the_end(tmp_path, monkeypatch):
    """The steps the training state is written at: each multiple of ``checkpoint_every`` and the last step, which
    is written once even when it is a multiple or a callback stopped the run there."""
    written = record_state_writes(monkeypatch)
    for steps, stop_at, want in ((6, None, [3, 6]), (7, None, [3, 6, 7]), (8, 6, [3, 6]), (8, 5, [3, 5])):
        written.clear()
        stop = (lambda step, history: step == stop_at) if stop_at else None
        fit(affine_flow(), CorrelatedGaussian(), steps=steps, batch_size=8, seed=0, callback=stop,
            checkpoint_dir=tmp_path / f"{steps}-{stop_at}", checkpoint_every=3)
        assert [record["step"] for record in written] == want, (steps, stop_at)


class _InterruptedOnCall(ElementwiseAffine):
    """Raises KeyboardInterrupt in its forward on call ``at`` (1-based, counting every forward)."""

    def __init__(self, features: int, at: int | None) -> None:
        super().__init__(features)
        self.at, self.calls = at, 0

    def _forward(self, x, context):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return super()._forward(x, context)


def test_a_ctrl_c_inside_a_step_keeps_the_last_whole_steps_checkpoint(tmp_path):
    """Ctrl-C during step 5's forward (call 6; call 1 is the initialising pass): step 5's batch is already drawn, so
    no state is written on the way out; the step-4 checkpoint stays, and resuming from it matches a whole run."""
    def run(interrupt_at: int | None, resume: bool):
        flow = Flow(_InterruptedOnCall(2, interrupt_at), StandardNormal(2))
        history = fit(flow, CorrelatedGaussian(), steps=8, batch_size=16, seed=1, checkpoint_dir=tmp_path,
                      checkpoint_every=2, resume=resume)
        return flow, history

    whole, whole_history = run(None, resume=False)
    empty(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run(6, resume=False)
    assert read_state(tmp_path)["step"] == 4
    resumed, history = run(None, resume=True)
    assert history.losses == whole_history.losses
    assert_same_parameters(whole, resumed)


def test_the_files_written_at_the_end_describe_the_run(tmp_path):
    """The training state and ``model.pt`` name the step and training time the run ended at; a checkpoint_dir that
    does not exist yet, parents included, is made."""
    directory = tmp_path / "runs" / "a"
    flow = affine_flow()
    history = fit(flow, CorrelatedGaussian(), steps=5, batch_size=8, seed=0, checkpoint_dir=directory)
    state = read_state(directory)
    assert state["step"] == 5 and state["trained_seconds"] == history.trained_seconds > 0
    assert read_metadata(directory / "model.pt") == {"step": 5, "trained_seconds": history.trained_seconds}
    assert_same_parameters(load(directory / "model.pt"), flow)


def test_resume_refuses_a_training_state_of_another_version(tmp_path):
    fit(affine_flow(), CorrelatedGaussian(), steps=2, batch_size=8, seed=0, checkpoint_dir=tmp_path)
    state = read_state(tmp_path)
    state["version"] = 2
    torch.save(state, tmp_path / "training_state.pt")
    with pytest.raises(CheckpointError, match="has version 2; this ctflows reads version 1"):
        fit(affine_flow(), CorrelatedGaussian(), steps=4, batch_size=8, seed=0, checkpoint_dir=tmp_path, resume=True)


def test_resume_removes_the_temporaries_of_interrupted_writes_and_nothing_else(tmp_path):
    """A writer killed mid-write leaves a hidden temporary of either file; a resumed run deletes those only."""
    settings = dict(steps=4, batch_size=8, seed=0, checkpoint_dir=tmp_path)
    assert fit(affine_flow(), CorrelatedGaussian(), callback=lambda step, history: step == 2, **settings).steps == 2
    left = [".training_state.pt.k3j2.tmp", ".model.pt.x9q1.tmp"]
    kept = [".notes.txt.a1.tmp", "model.pt.tmp", "notes.txt"]
    for name in left + kept:
        (tmp_path / name).write_bytes(b"partial")
    assert fit(affine_flow(), CorrelatedGaussian(), resume=True, **settings).steps == 4
    assert not any((tmp_path / name).exists() for name in left)
    assert all((tmp_path / name).read_bytes() == b"partial" for name in kept)


def test_a_resumed_runs_progress_bar_starts_at_the_step_it_resumes_from(tmp_path, capsys):
    """The bar counts the saved steps as done: it is drawn first at 4/6 and ends at 6/6."""
    settings = dict(steps=6, batch_size=8, seed=0, checkpoint_dir=tmp_path, progress=True)
    fit(affine_flow(), CorrelatedGaussian(), callback=lambda step, history: step == 4, **settings)
    capsys.readouterr()
    fit(affine_flow(), CorrelatedGaussian(), resume=True, **settings)
    drawn = renders(capsys.readouterr().err)
    assert "4/6" in drawn[0] and "6/6" in drawn[-1]


def test_a_run_without_resume_starts_afresh_over_a_saved_state(tmp_path):
    """Only ``resume=True`` reads the directory: a new run there ignores the state it finds, then replaces it."""
    settings = dict(steps=6, batch_size=8, seed=0, checkpoint_dir=tmp_path)
    fit(affine_flow(), CorrelatedGaussian(), callback=lambda step, history: step == 4, **settings)
    again = fit(affine_flow(), CorrelatedGaussian(), **settings)
    fresh = fit(affine_flow(), CorrelatedGaussian(), **{**settings, "checkpoint_dir": tmp_path / "fresh"})
    assert again.steps == 6 and again.losses == fresh.losses
    assert read_state(tmp_path)["step"] == 6


def test_a_resumed_run_evaluates_the_same_points_as_an_uninterrupted_one(tmp_path):
    """Evaluation points drawn from a density come from the run's evaluation seed, which the state carries: the
    resumed run's evaluations are the uninterrupted run's, number for number (all but their times)."""
    p = CorrelatedGaussian()

    def run(stop_at: int | None, resume: bool):
        stop = (lambda step, history: step == stop_at) if stop_at else None
        history = fit(affine_flow(), p, steps=6, batch_size=16, seed=0, eval_data=p, eval_every=2, eval_samples=200,
                      callback=stop, checkpoint_dir=tmp_path, resume=resume)
        return [{k: v for k, v in e.items() if k != "time"} for e in history.evals]

    whole = run(None, resume=False)
    empty(tmp_path)
    run(4, resume=False)  # stopped at a step due an evaluation: one more would be added at the stop
    assert run(None, resume=True) == whole and [e["step"] for e in whole] == [2, 4, 6]


PLAIN_SETTINGS = dict(steps=4, batch_size=8, seed=1, lr=1e-2, weight_decay=0.0, clip_grad=5.0, checkpoint_every=2,
                      ema_decay=0.75)
NUMPY_SETTINGS = dict(steps=np.int64(4), batch_size=np.int64(8), seed=np.int64(1), lr=np.float64(1e-2),
                      weight_decay=np.float64(0.0), clip_grad=np.float32(5.0), checkpoint_every=np.int64(2),
                      ema_decay=np.float32(0.75))


@pytest.mark.parametrize("plain, numpy", [(1, np.int64(1)), (0.25, np.float64(0.25))], ids=["steps", "fraction"])
def test_a_numpy_warmup_trains_as_the_python_one_and_its_checkpoint_resumes(tmp_path, plain, numpy):
    """A warm-up from NumPy, as a step count or a fraction, is the Python number it equals; the run's settings are
    saved as plain numbers, so that its training state can be read back (a NumPy scalar in it made resume fail)."""
    reference = affine_flow()
    fit(reference, CorrelatedGaussian(), checkpoint_dir=tmp_path / "plain", warmup=plain, **PLAIN_SETTINGS)
    fit(affine_flow(), CorrelatedGaussian(), checkpoint_dir=tmp_path / "numpy", callback=lambda step, history: step == 2,
        warmup=numpy, **NUMPY_SETTINGS)
    resumed = affine_flow()
    fit(resumed, CorrelatedGaussian(), checkpoint_dir=tmp_path / "numpy", resume=True, warmup=numpy, **NUMPY_SETTINGS)
    assert_same_parameters(reference, resumed)


def test_numpy_settings_train_as_python_ones_and_their_checkpoint_resumes(tmp_path):
    """Counts and rates from NumPy (a sweep over np.arange, say) are taken as the Python numbers they equal: the run
    matches one given plain ints and floats, and its training state, holding no NumPy scalar, can be read back."""
    plain = affine_flow()
    fit(plain, CorrelatedGaussian(), checkpoint_dir=tmp_path / "plain", **PLAIN_SETTINGS)
    stop_at_2 = lambda step, history: step == 2  # noqa: E731
    fit(affine_flow(), CorrelatedGaussian(), checkpoint_dir=tmp_path / "numpy", callback=stop_at_2, **NUMPY_SETTINGS)
    resumed = affine_flow()
    fit(resumed, CorrelatedGaussian(), checkpoint_dir=tmp_path / "numpy", resume=True, **NUMPY_SETTINGS)
    assert_same_parameters(plain, resumed)

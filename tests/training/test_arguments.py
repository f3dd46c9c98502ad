"""fit's argument checks, called directly: the edges of each range, and the cases that only these checks catch."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ctflows.errors import ConfigurationError, DataError
from ctflows.training.arguments import (
    check_arguments, check_checkpointing, check_device, check_eval_shape, check_model_and_seed, check_training_points,
    optimizer_class,
)

GOOD = dict(steps=10, seconds=None, batch_size=8, lr=1e-3, weight_decay=0.0, clip_grad=None, eval_data=None, eval_every=None,
            eval_samples=100, regularization=None)


class Model(torch.nn.Module):
    def log_prob(self, x):
        return x


def check(**changes):
    check_arguments(**{**GOOD, **changes})


def test_good_arguments_pass():
    check()
    check(steps=None, seconds=0.5)
    check(steps=1, batch_size=1, lr=1e-9, clip_grad=1e-9)


@pytest.mark.parametrize("name", ["steps", "batch_size"])
def test_a_bool_is_not_a_count(name):
    with pytest.raises(ConfigurationError, match=f"fit: {name} must be an int >= 1, got True"):
        check(**{name: True})


@pytest.mark.parametrize("seconds", [0, 0.0, math.inf, math.nan, -1.0])
def test_seconds_must_be_positive_and_finite(seconds):
    with pytest.raises(ConfigurationError, match="fit: seconds must be a positive number"):
        check(steps=None, seconds=seconds)


@pytest.mark.parametrize("lr", [math.inf, math.nan])
def test_lr_must_be_finite(lr):
    with pytest.raises(ConfigurationError, match="fit: lr must be a positive number"):
        check(lr=lr)


@pytest.mark.parametrize("seed", [0, 2**63 - 1])
def test_seeds_at_the_ends_of_the_range_pass(seed):
    check_model_and_seed("fit", Model(), trained=True, seed=seed)


@pytest.mark.parametrize("seed", [0, 2**63 - 1])
def test_seeds_of_other_integer_kinds_pass(seed):
    for kind in (np.int64, torch.tensor):
        check_model_and_seed("fit", Model(), trained=True, seed=kind(seed))


@pytest.mark.parametrize("seed", [-1, 2**63, True, torch.tensor(True), torch.tensor([5]), 5.0])
def test_seeds_just_outside_the_range_or_not_whole_numbers_are_refused(seed):
    # torch.manual_seed would take the first two, and int() the rest (a flag, a one-element tensor of any shape)
    with pytest.raises(ConfigurationError, match=r"fit: seed must be a whole number from 0 to 2\^63 - 1"):
        check_model_and_seed("fit", Model(), trained=True, seed=seed)


def test_a_model_to_train_must_be_a_module_even_with_log_prob():
    class NotAModule:
        def log_prob(self, x):
            return x

    check_model_and_seed("evaluate", NotAModule(), trained=False)
    with pytest.raises(ConfigurationError, match="fit: the model must be a ctflows Flow.*got NotAModule"):
        check_model_and_seed("fit", NotAModule(), trained=True)


@pytest.mark.parametrize("every, resume", [(None, True), (5, False)])
def test_resume_or_checkpoint_every_without_a_checkpoint_dir_is_refused(every: int | None, resume: bool) -> None:
    """Either one needs a directory: with none, checkpoints would silently never be written or read."""
    check_checkpointing(None, None, False)
    with pytest.raises(ConfigurationError, match="fit: checkpoint_every and resume need a checkpoint_dir"):
        check_checkpointing(None, every, resume)


@pytest.mark.parametrize("directory", [5, b"runs/a", ["runs"]])
def test_a_checkpoint_dir_that_is_not_a_path_is_refused_naming_it(directory: object) -> None:
    """A ConfigurationError naming checkpoint_dir before training, not pathlib's TypeError."""
    with pytest.raises(ConfigurationError, match=r"fit: checkpoint_dir must be a str or os.PathLike .*, got (int|bytes|list)"):
        check_checkpointing(directory, None, False)


@pytest.mark.parametrize("changes, message", [
    ({"eval_data": torch.zeros(4, 2), "eval_samples": 0}, "eval_samples must be an int >= 1, got 0"),
    ({"eval_data": torch.zeros(4, 2), "eval_every": 0}, "eval_every must be an int >= 1, got 0"),
])
def test_evaluation_counts_are_checked_when_there_is_eval_data(changes: dict, message: str) -> None:
    """Zero evaluation points or an evaluation every 0 steps are refused once evaluation is asked for."""
    check(eval_data=torch.zeros(4, 2))
    with pytest.raises(ConfigurationError, match=f"fit: {message}"):
        check(**changes)


def test_an_infinite_weight_decay_is_refused() -> None:
    """inf passes ``>= 0``: it must still be refused, as it turns every parameter into NaN at the first step."""
    check(weight_decay=0.0)
    with pytest.raises(ConfigurationError, match="fit: weight_decay must be a finite number >= 0, got inf"):
        check(weight_decay=math.inf)


def test_an_infinite_clip_grad_means_no_clipping_and_nan_is_refused() -> None:
    """clip_grad=inf (of any kind) is taken as it is, "no clipping"; NaN and -inf are refused like 0."""
    for unlimited in (math.inf, np.float64(math.inf), torch.tensor(math.inf)):
        assert check_arguments(**{**GOOD, "clip_grad": unlimited}).clip_grad == math.inf
    for bad in (math.nan, -math.inf, torch.tensor(math.nan), True):
        with pytest.raises(ConfigurationError, match="fit: clip_grad must be a positive number or None"):
            check(clip_grad=bad)


def test_a_cuda_index_one_past_the_last_device_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("fit", "cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigurationError, match=r"fit: device 'cuda:2' does not exist: this machine has 2 CUDA"):
        check_device("fit", "cuda:2")


@pytest.mark.parametrize("name, cls", [("AdamW", torch.optim.AdamW), ("ADAM", torch.optim.Adam), ("adam", torch.optim.Adam)])
def test_optimizer_names_are_case_insensitive(name, cls):
    assert optimizer_class(name) is cls


@pytest.mark.parametrize("optimizer", [dict, torch.nn.Linear, "sgd"])
def test_a_class_that_is_not_an_optimizer_or_an_unknown_name_is_refused(optimizer: object) -> None:
    """Only Optimizer subclasses and the table's names: any other class would fail later, when fit builds it."""
    assert optimizer_class(torch.optim.SGD) is torch.optim.SGD
    with pytest.raises(ConfigurationError, match=r"fit: optimizer must be one of \['adam', 'adamw'\] or an Optimizer class"):
        optimizer_class(optimizer)


@pytest.mark.parametrize("pair", [tuple, list])
def test_eval_data_as_a_pair_of_either_kind_is_shape_checked(pair):
    x = torch.zeros(4, 2)
    check_eval_shape(pair([torch.zeros(5, 2), torch.zeros(5, 1)]), x)
    with pytest.raises(ConfigurationError, match=r"fit: eval_data has points of shape \[3\] but the training data \[2\]"):
        check_eval_shape(pair([torch.zeros(5, 3), torch.zeros(5, 1)]), x)


def test_numbers_of_numpy_and_torch_come_back_as_python_ones():
    """What fit stores in a training state must be plain ints and floats (a NumPy scalar keeps it from being read
    back): each setting, given as a NumPy or 0-d torch number, is returned as the Python number it equals."""
    counts = check_arguments(**{**GOOD, "steps": np.int64(7), "seconds": np.float32(0.5), "batch_size": torch.tensor(16),
                                "lr": torch.tensor(0.25), "weight_decay": np.float32(0.5), "clip_grad": torch.tensor(2.0)})
    assert counts == (7, 0.5, 16, 0.25, 0.5, 2.0, GOOD.get("eval_every"), GOOD["eval_samples"])
    assert all(type(value) in (int, float, type(None)) for value in counts)


def test_only_vector_tensor_data_of_up_to_256_features_is_checked_to_span_its_space() -> None:
    """Densities and loaders (None), images [N, C, H, W] (raw pixels have constant borders, and dequantized ones
    are checked by no one) and wider vectors, whose check would cost N·D², pass unchecked; vectors of 256 are
    checked. Each of the unchecked would be refused: every column is constant."""
    check_training_points(None)
    check_training_points(torch.zeros(300, 1, 2, 2))
    check_training_points(torch.zeros(300, 257))
    with pytest.raises(DataError, match="fit: column 0 of the data is constant"):
        check_training_points(torch.zeros(300, 256))
    check_training_points(torch.randn(300, 256, generator=torch.Generator().manual_seed(0)))

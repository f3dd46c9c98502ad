"""ActNorm's data-dependent initialisation: from the first batch that has a spread, once."""
import io

import pytest
import torch

from ctflows.errors import InputError
from ctflows.linear import ActNorm
from ctflows.linear.actnorm import awaits_data_initialisation


def batch(seed: int, loc: float, scale: float) -> torch.Tensor:
    """200 points in 3-D whose per-feature mean and spread are about ``loc`` and ``scale``."""
    return torch.randn(200, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale + loc


def initialised() -> tuple[ActNorm, torch.Tensor]:
    """An ActNorm initialised on ``batch(0, 5, 3)`` (returned too), left in ``eval()``."""
    layer = ActNorm(3).double().train()
    first = batch(0, 5.0, 3.0)
    layer(first)
    return layer.eval(), first


def assert_standardised(z: torch.Tensor) -> None:
    """Zero mean and unit standard deviation per feature."""
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(3, dtype=z.dtype), atol=1e-12, rtol=0)
    torch.testing.assert_close(z.std(dim=0), torch.ones(3, dtype=z.dtype), atol=1e-6, rtol=0)


def test_a_first_batch_of_one_does_not_lock_in_and_the_next_batch_initialises():
    layer = ActNorm(2).train()
    point = torch.tensor([[5.0, -3.0]])
    z, logdet = layer(point)
    assert not bool(layer.initialized) and torch.equal(z, point) and float(logdet.detach().abs().sum()) == 0  # identity so far
    batch = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0)) * 10 + 100
    z, _ = layer(batch)
    assert bool(layer.initialized)
    torch.testing.assert_close(z.mean(dim=0), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(dim=0), torch.ones(2), atol=1e-4, rtol=0)
    with pytest.raises(InputError, match="at least 2 points"):
        ActNorm(2).initialize(point)


def test_a_constant_feature_is_refused_not_scaled_by_a_million():
    # Its scale would be 1/eps: a point 0.01 off the constant would get a log-density near -5e19.
    layer = ActNorm(2).train()
    with pytest.raises(InputError, match="feature 1 is constant.*jitter"):
        layer(torch.tensor([[0.0, 2.0], [1.0, 2.0], [3.0, 2.0]]))
    assert not bool(layer.initialized)


def test_only_the_first_training_batch_initialises_and_later_ones_leave_the_statistics():
    """Initialisation happens once: a second batch with other statistics moves neither μ nor s."""
    layer, first = initialised()
    assert not awaits_data_initialisation(layer)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    layer.train()(batch(1, -40.0, 0.1))
    assert all(torch.equal(v, state[k]) for k, v in layer.state_dict().items())
    assert_standardised(layer(first)[0])


def test_eval_mode_does_not_initialise_and_the_next_training_batch_does():
    """In eval() the layer stays the identity and still awaits data; the first training batch then initialises."""
    layer = ActNorm(3).double().eval()
    x = batch(2, 5.0, 3.0)
    z, logdet = layer(x)
    assert torch.equal(z, x) and not logdet.detach().any()
    assert awaits_data_initialisation(layer)
    assert_standardised(layer.train()(x)[0])
    assert not awaits_data_initialisation(layer)


def test_the_initialised_state_survives_save_and_load():
    """A reloaded layer is initialised: a training batch after loading does not re-initialise it."""
    layer, first = initialised()
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    loaded = ActNorm(3).double()
    loaded.load_state_dict(torch.load(buffer))
    assert not awaits_data_initialisation(loaded)
    other = batch(3, -40.0, 0.1)
    torch.testing.assert_close(loaded.train()(other)[0], layer(other)[0], atol=0, rtol=0)
    assert_standardised(loaded(first)[0])


class UnreadableFlag(torch.Tensor):
    """A flag whose truth value may not be read: on a GPU each read waits for the device."""

    def __bool__(self) -> bool:
        raise AssertionError("the initialised flag was read on a training step")


def test_once_initialised_a_training_step_does_not_read_the_flag_back():
    layer, first = initialised()
    layer.initialized = torch.tensor(True).as_subclass(UnreadableFlag)
    assert_standardised(layer.train()(first)[0])


def test_loading_an_uninitialised_state_makes_the_next_training_batch_initialise_again():
    """The flag read once is forgotten when a state is loaded, so a fresh state's layer learns from data again."""
    layer, _ = initialised()
    layer.load_state_dict(ActNorm(3).double().state_dict())
    assert awaits_data_initialisation(layer)
    other = batch(4, -40.0, 2.0)
    assert_standardised(layer.train()(other)[0])


def test_eps_is_added_to_the_standard_deviation_it_initialises_from():
    """s = log(σ + eps): the first batch comes out with spread σ / (σ + eps) and log-det -Σ log(σ + eps)."""
    first = batch(0, 5.0, 3.0)
    std = first.std(dim=0)
    z, logdet = ActNorm(3, eps=1.5).double().train()(first)
    torch.testing.assert_close(z.std(dim=0), std / (std + 1.5), atol=1e-12, rtol=0)
    torch.testing.assert_close(logdet, torch.full((200,), -float((std + 1.5).log().sum()), dtype=torch.float64))


def test_after_loading_an_initialised_state_the_flag_is_read_once_not_every_step():
    """The load clears the remembered flag; the first training step reads it back, and later steps trust the copy."""
    layer, first = initialised()
    loaded = ActNorm(3).double()
    loaded.load_state_dict(layer.state_dict())
    loaded.train()(first)  # reads the loaded (initialised) flag once
    loaded.initialized = torch.tensor(True).as_subclass(UnreadableFlag)
    assert_standardised(loaded(first)[0])

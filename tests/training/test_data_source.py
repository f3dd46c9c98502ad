"""The batch stream: exact batch sizes, fair epochs, reproducible from a seed, clear errors."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ctflows.errors import CheckpointError, DataError
from ctflows.training.data_source import batch_stream, exact_log_prob, make_generator, one_pass
from training.fakes import CorrelatedGaussian

CPU = torch.device("cpu")


def take(data, k, batch_size=4, seed=0, dtype=torch.float32):
    stream = batch_stream(data, batch_size, generator=make_generator(seed), device=CPU, dtype=dtype)
    return [next(stream) for _ in range(k)]


def test_tensor_batches_cover_every_row_equally():
    x = torch.arange(10.0).reshape(10, 1)
    batches = take(x, 5, batch_size=4)  # 20 rows = two epochs of 10
    rows = torch.cat([b for b, _ in batches]).flatten()
    assert all(b.shape == (4, 1) for b, _ in batches)
    assert torch.bincount(rows.long(), minlength=10).tolist() == [2] * 10


def test_same_seed_same_batches_and_pairs_stay_aligned():
    x = torch.randn(50, 2)
    c = x[:, :1] * 3
    a, b = take((x, c), 3, seed=1), take((x, c), 3, seed=1)
    assert all(torch.equal(u[0], v[0]) for u, v in zip(a, b))
    assert all(torch.equal(ctx, xb[:, :1] * 3) for xb, ctx in a)


def test_density_and_loader_and_dtype():
    batches = take(CorrelatedGaussian(), 2, batch_size=16, dtype=torch.float64)
    assert batches[0][0].shape == (16, 2) and batches[0][0].dtype == torch.float64 and batches[0][1] is None
    loader = DataLoader(TensorDataset(torch.randn(6, 2)), batch_size=4)
    assert [b.shape[0] for b, _ in take(loader, 4)] == [4, 2, 4, 2]  # cycles through epochs


def test_bad_data():
    with pytest.raises(DataError, match="Tensor x or a tuple"):
        take(DataLoader(TensorDataset(torch.randn(4, 1), torch.randn(4, 1), torch.randn(4, 1)), batch_size=2), 1)
    with pytest.raises(DataError, match="one-shot"):
        take(iter([torch.randn(2, 2)]), 2)
    with pytest.raises(DataError, match="context"):
        take((torch.randn(4, 2), torch.randn(3, 1)), 1)
    with pytest.raises(DataError, match="must be"):
        take(42, 1)


def test_data_with_a_nan_or_inf_row_are_refused_by_the_data_not_the_first_layer():
    """Tensors before the first batch: else training stops at the step whose batch holds the first bad row, maybe hours
    in. A loader's batch as it comes, named by its place in the pass."""
    x = torch.randn(100, 2, 3)
    x[70, 1, 2], x[40, 0, 0] = float("inf"), float("nan")
    with pytest.raises(DataError, match=r"^fit: data has NaN or Inf values in 2 of its 100 rows, the first being row 40"):
        batch_stream(x, 4, generator=make_generator(0), device=CPU, dtype=torch.float32)
    context = torch.zeros(100, 1)
    context[99] = float("-inf")
    with pytest.raises(DataError, match=r"^evaluate: the context of data has NaN or Inf values in 1 of its 100 rows, the first being row 99"):
        next(one_pass((torch.randn(100, 2), context), n=100, batch_size=10, generator=make_generator(0), device=CPU, dtype=torch.float32))
    dataset = torch.randn(40, 2)
    dataset[21, 0] = float("nan")  # in the third batch of 10
    loader = DataLoader(TensorDataset(dataset), batch_size=10)
    stream = batch_stream(loader, 10, generator=make_generator(0), device=CPU, dtype=torch.float32)
    next(stream), next(stream)
    with pytest.raises(DataError, match=r"^fit: batch 3 of this pass over the data has NaN or Inf values in 1 of its 10 rows, the first being row 1 \(counting from 0\); drop"):
        next(stream)
    with pytest.raises(DataError, match=r"^evaluate: batch 3 of the data has NaN"):
        list(one_pass(loader, n=40, batch_size=10, generator=make_generator(0), device=CPU, dtype=torch.float32))
    integers = torch.arange(8).reshape(4, 2)  # cast to the model's dtype later; nothing to check
    assert torch.equal(take(integers, 1)[0][0].sort(0).values, integers.float())


@pytest.mark.parametrize("kind", ["tensor", "pair", "density", "loader"])
@pytest.mark.parametrize("taken", [0, 2, 3, 7])
def test_a_restored_stream_yields_exactly_the_batches_the_original_would_have(kind, taken):
    # Stopped after `taken` batches — at the start, mid-epoch, on an epoch's boundary — a stream rebuilt from
    # the state_dict (with a generator in another state) goes on with the very batches of the original.
    x = torch.arange(30.0).reshape(10, 3)
    data = {"tensor": x, "pair": (x, -x[:, :1]), "density": CorrelatedGaussian(),
            "loader": DataLoader(TensorDataset(x), batch_size=4)}[kind]  # a loader's own order: 4, 4, 2, 4, ...
    original = batch_stream(data, 4, generator=make_generator(0), device=CPU, dtype=torch.float32)
    for _ in range(taken):
        next(original)
    state = original.state_dict()
    restored = batch_stream(data, 4, generator=make_generator(99), device=CPU, dtype=torch.float32)
    restored.load_state_dict(state)
    for _ in range(6):
        (a, ca), (b, cb) = next(original), next(restored)
        assert torch.equal(a, b)
        assert (ca is None and cb is None) or torch.equal(ca, cb)


def test_a_state_that_is_not_a_stream_state_or_fits_other_data_is_refused():
    x = torch.arange(30.0).reshape(10, 3)
    stream = batch_stream(x, 4, generator=make_generator(0), device=CPU, dtype=torch.float32)
    for bad in ({}, [1, 2], {"generator": make_generator(0).get_state(), "order": torch.arange(3)}):
        with pytest.raises(CheckpointError, match="batch stream's state has the keys .*pass what state_dict"):
            stream.load_state_dict(bad)  # a KeyError or TypeError before
    saved = stream.state_dict()
    # torch.tensor([10]) is one row past the last of rows 0..9
    for order in (torch.arange(20), torch.tensor([10]), torch.arange(3.0), torch.tensor([-1, 2]), torch.zeros(2, 2, dtype=torch.long)):
        with pytest.raises(CheckpointError, match=r"row order does not fit this data \(10 rows\)"):
            stream.load_state_dict({**saved, "order": order})  # rows of a bigger data set, say
    assert torch.equal(next(stream)[0], next(batch_stream(x, 4, generator=make_generator(0), device=CPU, dtype=torch.float32))[0])


def test_a_stream_knows_how_many_rows_its_data_hold_where_they_can_be_counted():
    class Endless(torch.utils.data.IterableDataset):
        def __iter__(self):
            while True:
                yield torch.zeros(2)

    # and whether it cuts the batches to batch_size itself (tensors, a density) or a loader does (fit checks only the former)
    x = torch.zeros(12, 2)
    cases = [(x, 12, True), ((x, x[:, :1]), 12, True), (DataLoader(TensorDataset(x[:7]), batch_size=4), 7, False),
             (CorrelatedGaussian(), None, True), (DataLoader(Endless(), batch_size=4), None, False)]
    for data, rows, cuts in cases:
        stream = batch_stream(data, 4, generator=make_generator(0), device=CPU, dtype=torch.float32)
        assert stream.rows == rows and stream.uses_batch_size is cuts


def test_a_state_loaded_into_a_stream_already_partway_through_a_pass_starts_where_the_state_says() -> None:
    """load_state_dict replaces where the stream is: the batches it had taken in its own pass do not count."""
    loader = DataLoader(TensorDataset(torch.arange(24.0).reshape(12, 2)), batch_size=4)  # 3 batches a pass, in order
    source = batch_stream(loader, 4, generator=make_generator(0), device=CPU, dtype=torch.float32)
    next(source)  # one batch into its pass
    busy = batch_stream(loader, 4, generator=make_generator(0), device=CPU, dtype=torch.float32)
    next(busy), next(busy)  # two batches into its own pass
    busy.load_state_dict(source.state_dict())
    expected = [batch for batch, in loader][1:] + [batch for batch, in loader]
    assert all(torch.equal(next(busy)[0], batch) for batch in expected)


def test_a_seed_gives_the_same_generator_and_no_seed_a_fresh_one() -> None:
    """seed=None draws from OS entropy: two unseeded generators differ (a clash has probability 2^-64)."""
    assert make_generator(7).initial_seed() == make_generator(7).initial_seed() == 7
    assert make_generator(None).initial_seed() != make_generator(None).initial_seed()


def test_floating_data_is_cast_to_the_model_dtype_context_included() -> None:
    """float64 rows for a float32 model come out float32, in the same row order as the originals."""
    x = torch.randn(8, 2, dtype=torch.float64)
    for data in (x, (x, x[:, :1] * 2)):
        for batch, context in take(data, 2, dtype=torch.float32):
            assert batch.dtype == torch.float32 and (context is None or context.dtype == torch.float32)
            if context is not None:
                assert torch.equal(context, batch[:, :1] * 2)


def test_empty_data_are_refused_rather_than_giving_empty_batches() -> None:
    """Zero rows would give batches of zero rows forever, and a loss of NaN."""
    for data in (torch.zeros(0, 2), (torch.zeros(0, 2), torch.zeros(0, 1))):
        with pytest.raises(DataError, match=r"fit: data must be a non-empty Tensor \[N, \*event\], got shape \[0, 2\]"):
            take(data, 1)


def test_an_object_that_samples_but_has_no_log_prob_is_not_a_density() -> None:
    """Only an exact density (sample and log_prob) is trained on as one; evaluate scores against its log_prob."""
    class SamplerOnly:
        dim = 2

        def sample(self, n: int, generator=None, dtype=torch.float32) -> torch.Tensor:
            return torch.zeros(n, 2, dtype=dtype)

    density = CorrelatedGaussian()
    assert exact_log_prob(density) == density.log_prob and exact_log_prob(SamplerOnly()) is None
    with pytest.raises(DataError, match="fit: data must be a toy density, .* got SamplerOnly"):
        take(SamplerOnly(), 1)

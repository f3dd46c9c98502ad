"""Bad arguments to evaluate, save/load and the batch stream: a ctflows error naming the argument, not a raw one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ctflows.errors import CheckpointError, ConfigurationError, DataError, InputError
from ctflows.training import evaluate
from ctflows.training.checkpoint import load, read_metadata, save
from ctflows.training.data_source import batch_stream, make_generator
from training.fakes import CorrelatedGaussian, affine_flow

CPU = torch.device("cpu")
X = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))


def stream(data, batch_size=4, generator=None):
    generator = make_generator(0) if generator is None else generator
    return batch_stream(data, batch_size, generator=generator, device=CPU, dtype=torch.float32)


@pytest.mark.parametrize("generator", [0, "seed"])
def test_evaluate_refuses_a_generator_that_is_not_one(generator):
    # was a TypeError from inside the density's torch.randn
    with pytest.raises(ConfigurationError, match=r"evaluate: generator must be a torch.Generator or None, got (int|str)"):
        evaluate(affine_flow(), CorrelatedGaussian(), n=10, generator=generator)


@pytest.mark.parametrize("context", [np.zeros((10, 1)), [0.5]])
def test_evaluate_refuses_a_context_that_is_not_a_tensor(context):
    # was AttributeError: '...' object has no attribute 'dim'
    with pytest.raises(InputError, match=r"evaluate: context must be a torch.Tensor, got (ndarray|list); convert it"):
        evaluate(affine_flow(features=2, context_features=1), X, context=context)


def test_evaluate_takes_numpy_integer_counts():
    result = evaluate(affine_flow(), CorrelatedGaussian(), n=np.int64(50), batch_size=np.int64(16), probes=np.int64(1))
    assert result["n"] == 50


@pytest.mark.parametrize("data, message", [
    ({"x": X}, r"evaluate: data must be .* got dict"),  # was "a batch must be ..., got a str" (the dict's key)
    ("data.csv", r"evaluate: data must be .* got the string 'data.csv'\. For a built-in density pass "
                 r"ctflows\.get_density\('data\.csv'\) .*; for a file, ctflows\.load_array\(path\)"),
    (X.numpy(), r"evaluate: data is a ndarray, not a torch Tensor; convert it with torch.as_tensor"),
    ((X.numpy(), torch.zeros(10, 1)), r"evaluate: in the data pair \(x, context\), x is a ndarray"),
])
def test_evaluate_names_the_data_rather_than_its_first_item(data, message):
    with pytest.raises(DataError, match=message):
        evaluate(affine_flow(), data)


def test_a_scalar_context_in_a_data_pair_is_a_data_error():
    # was IndexError: tuple index out of range
    with pytest.raises(DataError, match=r"evaluate: data has 10 rows but its context has shape \[\]"):
        evaluate(affine_flow(features=2, context_features=1), (X, torch.tensor(1.0)))
    with pytest.raises(DataError, match=r"fit: data has 10 rows but its context has shape \[\]"):
        stream((X, torch.tensor(1.0)))


@pytest.mark.parametrize("data", [X, CorrelatedGaussian()])
@pytest.mark.parametrize("batch_size", [0, -1, 1.5, None])
def test_batch_stream_refuses_a_bad_batch_size(data, batch_size):
    # 0 and -1 gave empty batches without a word; 1.5 and None a TypeError at the first batch
    with pytest.raises(ConfigurationError, match=r"fit: batch_size must be an int >= 1, got"):
        next(stream(data, batch_size=batch_size))


@pytest.mark.parametrize("generator", [0, None])
def test_batch_stream_refuses_a_missing_generator(generator):
    with pytest.raises(ConfigurationError, match=r"fit: (generator must be a torch.Generator|the batch stream needs a torch.Generator)"):
        next(batch_stream(X, 4, generator=generator, device=CPU, dtype=torch.float32))


@pytest.mark.parametrize("data, message", [
    (X.numpy(), r"fit: data is a ndarray, not a torch Tensor"),
    ({"x": X}, r"fit: data must be .* got dict"),
])
def test_batch_stream_names_the_data_rather_than_its_first_item(data, message):
    with pytest.raises(DataError, match=message):
        next(stream(data))


@pytest.mark.parametrize("call", [
    lambda path: save(affine_flow(), path), lambda path: load(path), lambda path: read_metadata(path),
])
@pytest.mark.parametrize("path", [None, 3])
def test_a_path_that_is_not_a_path_is_a_checkpoint_error(call, path):
    # was TypeError: expected str, bytes or os.PathLike object (from pathlib)
    with pytest.raises(CheckpointError, match=r"(save|load|read_metadata): path must be a str or os.PathLike"):
        call(path)


def test_save_under_a_file_says_it_is_a_file(tmp_path):
    (tmp_path / "notes").write_text("x")
    # was "the directory .../notes does not exist; create it first", which mkdir cannot do
    with pytest.raises(CheckpointError, match=r"save: .*notes is a file, not a directory"):
        save(affine_flow(), tmp_path / "notes" / "m.pt")


def test_save_onto_a_directory_says_so_before_writing(tmp_path):
    # was "writing ... failed: [Errno 21] Is a directory: '.../.name.xyz.tmp' -> ..."
    with pytest.raises(CheckpointError, match=r"save: .* is a directory; give a file path inside it"):
        save(affine_flow(), tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("map_location, message", [
    ("bogus", r"load: map_location: device 'bogus' is not a device torch knows"),
    ("gpu", r"load: map_location: device 'gpu' is not a device torch knows"),
    (5, r"load: map_location must be a device such as 'cpu'.* got int 5"),
])
def test_load_names_a_bad_map_location(tmp_path, map_location, message):
    # was CheckpointError "cannot rebuild the model ...; its classes must be importable under the same names"
    path = save(affine_flow(), tmp_path / "m.pt")
    with pytest.raises(ConfigurationError, match=message):
        load(path, map_location=map_location)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_load_onto_cuda_without_cuda_names_map_location(tmp_path):
    path = save(affine_flow(), tmp_path / "m.pt")
    with pytest.raises(ConfigurationError, match=r"load: map_location: device 'cuda' asks for CUDA, but no CUDA device"):
        load(path, map_location="cuda")


def test_load_still_takes_meta_a_dict_and_a_function(tmp_path):
    path = save(affine_flow(), tmp_path / "m.pt")
    assert next(load(path, map_location="meta").parameters()).is_meta
    for map_location in ({"cuda:0": "cpu"}, lambda storage, location: storage, torch.device("cpu")):
        assert next(load(path, map_location=map_location).parameters()).device == CPU

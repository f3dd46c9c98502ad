"""Turning a ``data`` argument into batches: the one place that knows the accepted kinds of data.

Accepted data:
    * a toy density (an object with ``sample(n, generator=None, dtype=...)``, ``log_prob(x)`` and ``dim``,
      such as those in :mod:`ctflows.data`): fresh exact samples every batch;
    * a Tensor ``[N, *event]``, or a pair ``(x [N, *event], context [N, c])``: shuffled minibatches;
    * a DataLoader (or any re-iterable) yielding ``x`` or ``(x,)`` or ``(x, context)``: its own order.

Every batch is ``(x, context_or_None)`` on the model's device, floating tensors cast to the model's dtype.
Randomness (density samples, shuffling) comes only from the ``torch.Generator`` passed in, which lives on
the CPU so that a seed gives the same batches on every device; a DataLoader's order is its own (give the
loader a ``generator=`` to make it reproducible).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset, default_collate

from ctflows.core.counts import positive_count
from ctflows.core.validation import check_generator
from ctflows.core.validation import placement as tensor_placement
from ctflows.errors import CheckpointError, ConfigurationError, DataError

Batch = tuple[Tensor, "Tensor | None"]

_KINDS = "a toy density, a Tensor [N, D], an (x, context) pair of Tensors, or a DataLoader"


def is_density(data: Any) -> bool:
    """Whether ``data`` is a density object with exact ``sample`` and ``log_prob`` (not a tensor or loader)."""
    if isinstance(data, (Tensor, tuple, list)):
        return False
    return callable(getattr(data, "sample", None)) and callable(getattr(data, "log_prob", None)) and hasattr(data, "dim")


def exact_log_prob(data: Any) -> Callable[[Tensor], Tensor] | None:
    """The data's exact ``log_prob`` ``[n, D] -> [n]`` when it is a density, else ``None``."""
    return data.log_prob if is_density(data) else None


def placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of ``model``'s tensors (the CPU and the default dtype where it has none)."""
    device, dtype = tensor_placement(model)
    return device or torch.device("cpu"), dtype or torch.get_default_dtype()


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or from OS entropy when ``seed`` is ``None``."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


class BatchStream:
    """Endless iterator of training batches ``(x [b, *event], context [b, c] | None)`` that can be resumed.

    Tensors are visited in a fresh random permutation per epoch, batches cut from a running stream of
    permutations so every batch has exactly ``min(batch_size, N)`` rows and every row is seen equally often.
    :meth:`state_dict` holds the generator state and the unvisited rows of the current permutation, so a
    stream restored from it yields exactly the batches the original would have (densities and tensors). A
    DataLoader's own order cannot be captured: a restored stream skips the batches already taken in the
    current pass, which repeats the order only if the loader's is deterministic.
    """

    def __init__(
        self, data: Any, batch_size: int, *, generator: torch.Generator, device: torch.device, dtype: torch.dtype,
        owner: str = "fit",
    ) -> None:
        self.batch_size = positive_count(owner, "batch_size", batch_size)
        _check_stream_generator(owner, generator)
        self.data, self.generator, self.owner = data, generator, owner
        self._place, self._dtype = _placer(device, dtype), dtype
        self._order = torch.empty(0, dtype=torch.long)
        self._taken_in_pass = 0  # for DataLoaders
        self._pass: Iterator[Any] | None = None
        _check_pair_of_tensors(data, owner)
        if is_density(data):
            self._kind = "density"
        elif _is_tensor_data(data):
            self._kind = "tensor"
            self._pair = _as_pair(data, owner)
        else:
            _check_iterable(data, owner)
            self._kind = "iterable"

    def __iter__(self) -> "BatchStream":
        return self

    @property
    def uses_batch_size(self) -> bool:
        """Whether the batches are cut to ``batch_size`` here (a density, tensors), not by the data themselves."""
        return self._kind != "iterable"

    @property
    def points(self) -> Tensor | None:
        """The training points ``[N, *event]`` when the data are tensors (as given, before any cast); else None."""
        return self._pair[0] if self._kind == "tensor" else None

    @property
    def rows(self) -> int | None:
        """How many rows the data hold (tensors, or a DataLoader over a sized dataset); None for a density or other iterables."""
        if self._kind == "tensor":
            return int(self._pair[0].shape[0])
        if isinstance(self.data, DataLoader) and not isinstance(self.data.dataset, IterableDataset):
            try:
                return len(self.data.dataset)  # type: ignore[arg-type]
            except TypeError:
                return None
        return None

    def batch_sizes(self) -> set[int] | None:
        """The sizes the batches will have, where they can be known before drawing them; None where they cannot.

        A DataLoader's are known when it batches a sampler of known length with its own batch size and default
        collation; a custom batch sampler or collate function, an IterableDataset or any other iterable: None.
        """
        if self._kind == "density":
            return {self.batch_size}
        if self._kind == "tensor":
            return {min(self.batch_size, self._pair[0].shape[0])}
        if not isinstance(self.data, DataLoader) or isinstance(self.data.dataset, IterableDataset):
            return None
        size = self.data.batch_size
        if not isinstance(size, int) or self.data.collate_fn is not default_collate:
            return None
        try:
            rows = len(self.data.sampler)  # what is batched: a subset or resampling sampler need not cover the dataset
        except TypeError:
            return None
        full, remainder = divmod(rows, size)
        return ({size} if full else set()) | ({remainder} if remainder and not self.data.drop_last else set())

    def __next__(self) -> Batch:
        if self._kind == "density":
            return self._place(self.data.sample(self.batch_size, generator=self.generator, dtype=self._dtype), None)
        if self._kind == "tensor":
            x, context = self._pair
            size = min(self.batch_size, x.shape[0])
            if self._order.numel() < size:
                fresh = torch.randperm(x.shape[0], generator=self.generator, device=self.generator.device)
                self._order = torch.cat([self._order, fresh])
            index, self._order = self._order[:size].to(x.device), self._order[size:]
            return self._place(x[index], None if context is None else context[index])
        x, context = _split(self._next_from_iterable(), self.owner)
        _check_finite_batch(x, context, f"batch {self._taken_in_pass} of this pass over the data", self.owner)
        return self._place(x, context)

    def _next_from_iterable(self) -> Any:
        for _ in range(2):  # a pass that just ended gets one fresh start
            if self._pass is None:
                self._pass, self._taken_in_pass = iter(self.data), 0
            try:
                item = next(self._pass)
                self._taken_in_pass += 1
                return item
            except StopIteration:
                empty = self._taken_in_pass == 0
                self._pass = None
                if empty:
                    break
        raise DataError(
            f"{self.owner}: the data iterable yielded no batches (a one-shot iterator is used up after one pass; "
            "pass a DataLoader or another re-iterable)"
        )

    def state_dict(self) -> dict[str, Any]:
        """Where the stream is: generator state, unvisited permutation rows, batches taken in this pass."""
        return {"generator": self.generator.get_state(), "order": self._order.clone(), "taken_in_pass": self._taken_in_pass}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`; a state of another shape or another data set is a CheckpointError."""
        keys = {"generator", "order", "taken_in_pass"}
        if not isinstance(state, Mapping) or not keys <= state.keys():
            found = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise CheckpointError(
                f"{self.owner}: a batch stream's state has the keys {sorted(keys)}, got {found}; pass what state_dict() returned"
            )
        order, rows = state["order"], self.rows if self._kind == "tensor" else 0  # only tensor data keep an order
        # rows past the data's end would surface as an IndexError batches later
        if not (isinstance(order, Tensor) and order.dim() == 1 and not order.is_floating_point()
                and (order.numel() == 0 or 0 <= int(order.min()) <= int(order.max()) < rows)):
            raise CheckpointError(
                f"{self.owner}: the saved batch stream's row order does not fit this data ({rows} rows); "
                "resume with the data the run was started on"
            )
        self.generator.set_state(state["generator"])
        self._order = state["order"].clone()
        skip = int(state["taken_in_pass"])
        self._pass = None
        for _ in range(skip):
            self._next_from_iterable()


def batch_stream(
    data: Any, batch_size: int, *, generator: torch.Generator, device: torch.device, dtype: torch.dtype, owner: str = "fit"
) -> BatchStream:
    """A :class:`BatchStream` over ``data`` (see there)."""
    return BatchStream(data, batch_size, generator=generator, device=device, dtype=dtype, owner=owner)


def one_pass(
    data: Any,
    *,
    n: int,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype,
    owner: str = "evaluate",
) -> Iterator[Batch]:
    """One pass over evaluation data: ``n`` samples of a density, all rows of a tensor in order, or one loader epoch.

    A density's ``n`` points are drawn at once (``n × D`` numbers; toy densities are small) and then batched.
    """
    batch_size = positive_count(owner, "batch_size", batch_size)
    place = _placer(device, dtype)
    if is_density(data):
        # One draw of all n points: torch's sampler streams differ by request size, and a seed should give
        # the same evaluation points whatever the batch size.
        points = data.sample(n, generator=generator, dtype=dtype)
        for start in range(0, n, batch_size):
            yield place(points[start : start + batch_size], None)
        return
    _check_pair_of_tensors(data, owner)
    if _is_tensor_data(data):
        x, context = _as_pair(data, owner)
        for start in range(0, x.shape[0], batch_size):
            rows = slice(start, start + batch_size)
            yield place(x[rows], None if context is None else context[rows])
        return
    _check_iterable(data, owner)
    for number, item in enumerate(data, start=1):
        x, context = _split(item, owner)
        _check_finite_batch(x, context, f"batch {number} of the data", owner)
        yield place(x, context)


def _placer(device: torch.device, dtype: torch.dtype) -> Callable[[Tensor, Tensor | None], Batch]:
    def move(t: Tensor) -> Tensor:
        # Integer data is left alone so that the layer's input check names the real problem.
        return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device=device)

    def place(x: Tensor, context: Tensor | None) -> Batch:
        return move(x), None if context is None else move(context)

    return place


def _is_tensor_data(data: Any) -> bool:
    return isinstance(data, Tensor) or (isinstance(data, (tuple, list)) and all(isinstance(t, Tensor) for t in data))


def _as_pair(data: Tensor | tuple | list, owner: str) -> Batch:
    x, context = _split(data, owner)
    if x.dim() < 2 or x.shape[0] == 0:
        raise DataError(f"{owner}: data must be a non-empty Tensor [N, *event], got shape {list(x.shape)}")
    if context is not None and (context.dim() == 0 or context.shape[0] != x.shape[0]):
        raise DataError(
            f"{owner}: data has {x.shape[0]} rows but its context has shape {list(context.shape)}; "
            f"give one context row per row, [{x.shape[0]}, c]"
        )
    _check_finite_batch(x, context, "data", owner)
    return x, context


def _check_finite_batch(x: Tensor, context: Tensor | None, name: str, owner: str) -> None:
    for part, what in ((x, name), (context, f"the context of {name}")):
        _check_finite(part, what, owner)


def _check_finite(values: Tensor | None, name: str, owner: str) -> None:
    """Refuse NaN/Inf in data (all of a tensor before the first step, or one loader batch) with the bad rows' count
    and the first: else training stops at the step whose batch holds one, maybe hours in, with the message of
    whichever layer saw it, which names neither."""
    if values is None or not values.is_floating_point() or values.device.type == "meta":
        return
    finite = torch.isfinite(values).reshape(values.shape[0], -1).all(dim=1)
    if not bool(finite.all()):
        rows = (~finite).nonzero().flatten()
        raise DataError(
            f"{owner}: {name} has NaN or Inf values in {rows.numel()} of its {values.shape[0]} rows, the first "
            f"being row {int(rows[0])} (counting from 0); drop or fix those rows first "
            "(torch.isfinite(x).flatten(1).all(1) marks the good ones)"
        )


def _split(item: Any, owner: str) -> Batch:
    if isinstance(item, Tensor):
        return item, None
    if isinstance(item, (tuple, list)) and len(item) in (1, 2) and all(isinstance(t, Tensor) for t in item):
        return item[0], item[1] if len(item) == 2 else None
    kind = f"a {type(item).__name__}" + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else "")
    raise DataError(f"{owner}: a batch must be a Tensor x or a tuple (x,) or (x, context) of Tensors, got {kind}")


def _check_pair_of_tensors(data: Any, owner: str) -> None:
    """An ``(x, context)`` pair with an array in it would otherwise be iterated as a sequence of batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and any(isinstance(t, Tensor) for t in data):
        for name, part in zip(("x", "context"), data):
            if not isinstance(part, Tensor):
                raise DataError(f"{owner}: in the data pair (x, context), {name} is a {type(part).__name__}, not a "
                                "torch Tensor; convert it with torch.as_tensor(...)")


def _check_iterable(data: Any, owner: str) -> None:
    # A string, a mapping or an array is iterable too, but as characters, keys or rows, none of them a batch:
    # refused here, the error would otherwise name the first item (a str for a dict) instead of the data.
    if isinstance(data, str):
        raise DataError(
            f"{owner}: data must be {_KINDS}; got the string {data!r}. For a built-in density pass "
            f"ctflows.get_density({data!r}) (the names: ctflows.list_densities()); for a file, ctflows.load_array(path)"
        )
    if not isinstance(data, Iterable) or isinstance(data, (bytes, Mapping)):
        raise DataError(f"{owner}: data must be {_KINDS}; got {type(data).__name__}")
    if hasattr(data, "__array__"):
        raise DataError(f"{owner}: data is a {type(data).__name__}, not a torch Tensor; convert it with torch.as_tensor(data)")


def _check_stream_generator(owner: str, generator: Any) -> None:
    """A CPU ``torch.Generator``: the stream's randomness, and the state it is resumed from, live in it."""
    check_generator(owner, generator, torch.device("cpu"))
    if generator is None:
        raise ConfigurationError(f"{owner}: the batch stream needs a torch.Generator, got None; pass make_generator(seed)")

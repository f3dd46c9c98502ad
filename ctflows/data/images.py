"""Image data with no download: scikit-learn's bundled 8×8 digits, and MNIST-format IDX files already on disk.

Both return integer pixel values as ``torch.uint8`` tensors ``[N, 1, H, W]`` together with their number
of gray levels L, which dequantization needs (``x = (k + u) / L``, see :mod:`ctflows.image.dequantization`):

    digits:  1,797 images 8×8, values 0…16, so L = 17 (``DIGITS_LEVELS``)   (UCI optdigits; Alpaydin & Kaynak 1998)
    MNIST:   values 0…255, so L = 256                                      (LeCun et al. 1998, IDX format)

IDX: 2 zero bytes, a type byte (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64),
a byte giving the number of dimensions, one big-endian uint32 per dimension, then the values big-endian.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ctflows.core.paths import existing_file
from ctflows.errors import ConfigurationError, DataError

DIGITS_LEVELS = 17
"""Gray levels of scikit-learn's digits: each pixel counts ink in a 4×4 block of the 32×32 scan, 0…16."""

MNIST_LEVELS = 256
"""Gray levels of 8-bit images such as MNIST."""

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_digits(*, return_labels: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """The 8×8 handwritten digits bundled with scikit-learn: ``uint8 [1797, 1, 8, 8]`` with values 0…16.

    Use ``levels=DIGITS_LEVELS`` (17) to dequantize them. ``return_labels=True`` also returns the digit
    classes ``int64 [1797]``. Needs the optional extra: ``pip install 'ctflows[images]'``.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ConfigurationError("load_digits needs scikit-learn: pip install 'ctflows[images]' (or scikit-learn>=1.3)") from None
    bunch = sklearn_digits()
    images = torch.from_numpy(np.asarray(bunch.images).round().astype(np.uint8)).unsqueeze(1)
    if return_labels:
        return images, torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    return images


def read_idx(path: str | os.PathLike[str]) -> Tensor:
    """Read an IDX file (optionally gzip-compressed, ``.gz``) into a tensor of its stored type and shape.

    Raises :class:`DataError` naming the file when it is missing, truncated, too long, or has a bad header.
    """
    path = existing_file("read_idx", path, "train-images-idx3-ubyte.gz")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as err:  # zlib: damage inside the compressed stream
        raise DataError(f"{path}: cannot read the file ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (it must start with two zero bytes, a type byte and a dimension count)")
    kind, ndim = raw[2], raw[3]
    if kind not in _IDX_TYPES:
        raise DataError(f"{path}: unknown IDX type byte 0x{kind:02x}; expected one of {', '.join(f'0x{k:02x}' for k in _IDX_TYPES)}")
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path}: IDX header declares {ndim} dimensions but the file is too short to hold their sizes")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[kind])
    expected = 4 + 4 * ndim + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"{path}: IDX file is {what}: header shape {list(shape)} needs {expected} bytes, the file has {len(raw)}")
    values = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)
    return torch.from_numpy(values.astype(dtype.newbyteorder("=")))


def load_idx_images(path: str | os.PathLike[str]) -> Tensor:
    """MNIST-format images from an IDX file of unsigned bytes ``[N, H, W]``: ``uint8 [N, 1, H, W]``, L = 256.

    Raises :class:`DataError` naming the file when it is not a 3-D unsigned-byte IDX file.
    """
    images = read_idx(path)
    if images.dtype != torch.uint8 or images.dim() != 3 or min(images.shape) == 0:
        raise DataError(
            f"{Path(path)}: expected IDX images of unsigned bytes with shape [N, H, W], got dtype {images.dtype} "
            f"and shape {list(images.shape)} (a label file has shape [N])"
        )
    return images.unsqueeze(1)

"""The bundled digits and the IDX reader, on a small file each test writes."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ctflows.data.images import DIGITS_LEVELS, load_digits, load_idx_images, read_idx
from ctflows.errors import DataError


def write_idx(path: Path, array: np.ndarray, type_byte: int) -> Path:
    header = bytes([0, 0, type_byte, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_idx_round_trip(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    for name in ("images-idx3-ubyte", "images-idx3-ubyte.gz"):
        loaded = load_idx_images(write_idx(tmp_path / name, images, 0x08))
        assert loaded.dtype == torch.uint8 and loaded.shape == (5, 1, 3, 4)
        assert np.array_equal(loaded[:, 0].numpy(), images)
    values = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    assert np.array_equal(read_idx(write_idx(tmp_path / "ints.idx", values, 0x0C)).numpy(), values)


def test_malformed_idx_files_raise_data_error_naming_the_file(tmp_path: Path) -> None:
    images = np.zeros((4, 2, 2), dtype=np.uint8)
    good = write_idx(tmp_path / "good.idx", images, 0x08).read_bytes()
    cases = {
        "truncated.idx": (good[:-3], "truncated"),
        "long.idx": (good + b"\0", "longer than its header"),
        "magic.idx": (b"\1" + good[1:], "not an IDX file"),
        "magic2.idx": (good[:1] + b"\1" + good[2:], "not an IDX file"),  # both leading bytes must be zero
        "type.idx": (good[:2] + b"\x07" + good[3:], "unknown IDX type byte 0x07"),
        "header.idx": (good[:6], "too short"),
        "sizes.idx": (good[:4 + 4 * 3 - 1], "IDX header declares 3 dimensions but the file is too short"),  # one byte short
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError, match=f"{name}.*{message}"):
            read_idx(tmp_path / name)
    # A .gz whose deflate stream is damaged (not merely cut short) fails in zlib, not in gzip.
    packed = bytearray(write_idx(tmp_path / "big.idx.gz", np.arange(4000, dtype=np.int32).reshape(40, 100), 0x0C).read_bytes())
    packed[len(packed) // 2: len(packed) // 2 + 8] = bytes(b ^ 0xFF for b in packed[len(packed) // 2: len(packed) // 2 + 8])
    (tmp_path / "damaged.idx.gz").write_bytes(bytes(packed))
    with pytest.raises(DataError, match="damaged.idx.gz: cannot read the file"):
        read_idx(tmp_path / "damaged.idx.gz")
    labels = write_idx(tmp_path / "labels.idx", np.arange(4, dtype=np.uint8), 0x08)
    with pytest.raises(DataError, match="labels.idx.*label file"):
        load_idx_images(labels)
    with pytest.raises(DataError, match="missing.idx: no such file"):
        read_idx(tmp_path / "missing.idx")
    for read in (read_idx, load_idx_images):  # not pathlib's TypeError
        with pytest.raises(DataError, match=r"^read_idx: path must be a str or os.PathLike such as .*, got int 3"):
            read(3)
    (tmp_path / "folder.idx").mkdir()
    with pytest.raises(DataError, match="folder.idx: not a regular file"):
        read_idx(tmp_path / "folder.idx")
    (tmp_path / "cut.idx.gz").write_bytes(gzip.compress(good)[:-10])  # a gzip stream that ends early
    with pytest.raises(DataError, match="cut.idx.gz: cannot read the file"):
        read_idx(tmp_path / "cut.idx.gz")
    signed = write_idx(tmp_path / "signed.idx", np.zeros((2, 2, 2), dtype=np.int8), 0x09)
    with pytest.raises(DataError, match="signed.idx: expected IDX images of unsigned bytes.*got dtype torch.int8"):
        load_idx_images(signed)


def test_digits_are_17_level_images() -> None:
    pytest.importorskip("sklearn")
    images, labels = load_digits(return_labels=True)
    assert images.dtype == torch.uint8 and images.shape == (1797, 1, 8, 8) and labels.shape == (1797,)
    assert int(images.max()) == DIGITS_LEVELS - 1 and int(images.min()) == 0
    assert set(labels.tolist()) == set(range(10))


def test_every_idx_type_round_trips_big_endian(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        0x09: rng.integers(-128, 128, size=(3, 4)).astype(np.int8),
        0x0B: rng.integers(-30000, 30000, size=(3, 4)).astype(np.int16),
        0x0C: rng.integers(-2**31, 2**31 - 1, size=(2, 2, 3)).astype(np.int32),
        0x0D: rng.normal(size=(5,)).astype(np.float32),
        0x0E: rng.normal(size=(2, 3)),
    }
    for type_byte, array in arrays.items():
        for name in (f"t{type_byte}.idx", f"t{type_byte}.idx.gz"):
            loaded = read_idx(write_idx(tmp_path / name, array, type_byte))
            assert loaded.numpy().dtype == array.dtype.newbyteorder("="), name
            np.testing.assert_array_equal(loaded.numpy(), array, err_msg=name)


def test_idx_files_with_no_dimensions_or_an_empty_axis_are_refused(tmp_path: Path) -> None:
    (tmp_path / "zero.idx").write_bytes(bytes([0, 0, 0x08, 0]))
    with pytest.raises(DataError, match="zero.idx: IDX header declares 0 dimensions"):
        read_idx(tmp_path / "zero.idx")
    empty = write_idx(tmp_path / "empty.idx", np.zeros((0, 2, 2), dtype=np.uint8), 0x08)
    with pytest.raises(DataError, match="empty.idx: expected IDX images"):
        load_idx_images(empty)


def test_digit_labels_belong_to_their_images() -> None:
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits as sklearn_digits

    images, labels = load_digits(return_labels=True)
    bunch = sklearn_digits()
    assert np.array_equal(labels.numpy(), bunch.target) and np.array_equal(images[:, 0].numpy(), bunch.images)

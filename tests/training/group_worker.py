"""One rank of a two-process gloo group started without torchrun, for test_distributed_units (not a test module).

    RANK=R WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=P python group_worker.py OUT

Builds :class:`DataParallel` the way ``fit`` does (it makes the group itself from the environment), calls each
collective with values that differ between the ranks, closes the group and writes what it saw to
``OUT/rank{R}.json``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from ctflows.training.distributed import DataParallel


def main() -> None:
    torch.set_num_threads(1)
    out, rank = Path(sys.argv[1]), int(os.environ["RANK"])
    group = DataParallel(torch.device("cpu"))
    values = torch.tensor([1.0, 10.0], dtype=torch.float64) * (rank + 1)  # rank 0: [1, 10], rank 1: [2, 20]
    before = values.clone()
    mean = group.mean(values)
    x = torch.arange(8.0).reshape(4, 2)
    share, context = group.shard(x, torch.arange(4.0)[:, None])
    report = {
        "rank": group.rank, "world": group.world, "main": group.main, "enabled": group.enabled, "owns": group.owns_group,
        "mean": mean.tolist(), "values_kept": torch.equal(values, before),
        "maximum": group.maximum(7.0 if rank == 0 else 2.0, torch.device("cpu")),  # max 7, sum 9, min 2
        "broadcast": group.broadcast_int(2**62 + 1 + rank, torch.device("cpu")),  # 2**62 + 1 is not a float64
        "share": share.tolist(), "context": context.tolist(),
    }
    group.close()
    report["initialized_after_close"] = dist.is_initialized()
    (out / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()

"""Processes and devices for training: one process alone, or one rank of several under torchrun.

Under torchrun (RANK and WORLD_SIZE set) each rank takes its own share of
the pieces (DDP; gloo on CPU, nccl on GPU); the reductions here keep the
ranks in step, and are the identity for one process.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Ranks:
    """This process's place among torchrun's (one process alone: rank 0 of 1)."""

    ddp: bool
    rank: int
    world: int
    device: torch.device

    @classmethod
    def start(cls) -> "Ranks":
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
            local = int(os.environ.get("LOCAL_RANK", 0))
            device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
            if device.type == "cuda":
                torch.cuda.set_device(device)
            return cls(True, dist.get_rank(), dist.get_world_size(), device)
        return cls(False, 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu"))

    @property
    def master(self) -> bool:
        return self.rank == 0

    def log(self, *a) -> None:
        if self.master:
            print(*a, file=sys.stderr, flush=True)

    def all_sum(self, values: list[float]) -> list[float]:
        """Sum floats over ranks (identity when single-process)."""
        if not self.ddp:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def least(self, n: int) -> int:
        """The smallest n of all ranks: every rank must take the same number of steps, or DDP's all-reduce hangs."""
        if not self.ddp:
            return n
        t = torch.tensor([n], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def any(self, flag: bool) -> bool:
        """True on every rank if it is on any (all ranks stop together)."""
        if not self.ddp:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item() > 0

    def masters(self, n: int) -> int:
        """Rank 0's n on every rank."""
        if not self.ddp:
            return n
        t = torch.tensor([n], device=self.device)
        dist.broadcast(t, src=0)
        return int(t.item())

    def close(self) -> None:
        if self.ddp:
            dist.barrier()
            dist.destroy_process_group()

"""What the shared loop needs from torch.distributed: set-up from torchrun's environment, DDP
wrapping, data loading in turn, sharding by rank, and reductions. In a single process every method
is a no-op."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..devices import pick_device
from ..errors import GanforgeError

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; ``device`` is None in a single process (the config decides)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel when several processes train together."""
        if not self.enabled:
            return module
        ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def shard(self, permutation: torch.Tensor) -> torch.Tensor:
        """This rank's disjoint, equally long share of an epoch's permutation."""
        if not self.enabled:
            return permutation
        per_rank = len(permutation) // self.world_size
        return permutation[self.rank::self.world_size][:per_rank]

    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            tensor = tensor.clone()
            dist.all_reduce(tensor)
            tensor /= self.world_size
        return tensor

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (e.g. a path that rank 0 chose)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank."""
        if not self.enabled:
            return flag
        return any(self.gather_objects(flag))

    def in_turn(self, load: Callable[[], T], what: str) -> T:
        """``load()`` on rank 0, then on the first process of every other node, then on the rest.

        A data set that ``load`` downloads or unpacks into a cache is then written once per file
        system (once in all on a shared one, once per node on local disks) before any other process
        looks for it, where every process at once would fetch it and could read another's half-written
        file. A GanforgeError in one process's turn stops every process, each with one line; any
        other exception ends that process, and torchrun then stops the rest.
        """
        if not self.enabled:
            return load()
        result: T | None = None
        turns = (self.rank == 0, self.rank != 0 and self.local_rank == 0, self.local_rank != 0)
        for mine in turns:
            error: GanforgeError | None = None
            if mine:
                try:
                    result = load()
                except GanforgeError as exc:
                    error = exc
            failed = self.gather_objects(error is not None)
            if error is not None:
                raise error
            if any(failed):
                raise GanforgeError(f"rank {failed.index(True)} could not load {what} (its error is above)")
        return result  # type: ignore[return-value]

    def average_buffers(self, module: nn.Module) -> None:
        """Average floating-point buffers (batch-norm running statistics) so every rank holds the same.

        Under DDP each rank normalises with its own batch's statistics and updates its own running
        estimates between the broadcasts of rank 0's buffers that DDP makes at each forward. ganforge
        averages them before every checkpoint and at the end, so what is saved is every rank's state.
        """
        if not self.enabled:
            return
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer)
                buffer /= self.world_size



def init_distributed(device_name: str = "auto") -> DistContext:
    """Join the process group that torchrun describes (NCCL on CUDA, gloo on CPU), or stay single."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        if local_rank >= gpus:
            per_node = os.environ.get("LOCAL_WORLD_SIZE", str(local_rank + 1))
            raise GanforgeError(f"torchrun started {per_node} processes on this node, which has {gpus} CUDA device(s); "
                                f"pass --nproc-per-node {gpus} or fewer, or --device cpu")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise GanforgeError(f"distributed training runs on CUDA (NCCL) or CPU (gloo), not {device.type}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", **_restart_safe_store(rank, world_size))
    return DistContext(rank, world_size, local_rank, device)


def restarts_need_a_store_per_attempt() -> bool:
    """Whether torchrun may restart this job across nodes in one shared store, where a restart can hang
    (:func:`_restart_safe_store`): the user should start torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1."""
    return int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0 and _in_agent_store() and not _one_node()


def _in_agent_store() -> bool:
    """Whether torchrun's agent serves the store this job meets in (its default)."""
    return os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"


def _one_node() -> bool:
    return os.environ.get("GROUP_WORLD_SIZE", "1") == "1"


def _restart_safe_store(rank: int, world_size: int) -> dict[str, Any]:
    """Where the process group meets, so that a torchrun restart (``--max-restarts``) does not hang.

    By default torchrun's agent serves one store for the whole job and restarted workers meet in
    it again, where the failed attempt's addresses are still kept (pytorch/pytorch#135712): gloo
    and NCCL then connect to processes that are gone. On one node the agent's restart count names
    the attempt for every worker, so each attempt meets under a prefix of its own. Across nodes the
    counts differ (a node that did not fail does not count the restart), so there torchrun must be
    started with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1, which gives each attempt a new store.
    """
    if not (_in_agent_store() and _one_node()):
        return {}
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size, is_master=False)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return {"store": dist.PrefixStore(f"ganforge/attempt-{attempt}", store), "rank": rank, "world_size": world_size}


def close_distributed() -> None:
    """Leave the process group, if this process joined one (torchrun expects it before exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

"""Where and how tensors run: the device, the autocast dtype, channels_last. One home, so training,
prediction and benchmarks make the same choice from the same settings."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ..choices import AMPS
from ..config import unknown_choice
from ..errors import UserError


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when a GPU is visible, else cpu; cuda without a GPU is a user error. Under torchrun
    each process takes the GPU of its LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and torch.cuda.is_available() and rank_and_world()[1] > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda asked for, but no CUDA GPU is visible; use auto or cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def resolve_amp(name: str, device: torch.device) -> torch.dtype | None:
    """auto -> bf16 (fp16 where bf16 is missing) on GPU, none on CPU; explicit names are honoured."""
    if name not in AMPS:
        raise unknown_choice("train.amp", name)
    if name == "none" or (name == "auto" and device.type != "cuda"):
        return None
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if name == "bf16" else torch.float16


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    rank: int = 0
    world: int = 1

    @classmethod
    def from_settings(cls, *, device: str, amp: str, channels_last: bool) -> "Runtime":
        """The runtime of train.device, train.amp and channels_last, resolved on this machine."""
        dev = resolve_device(device)
        # channels_last helps convolutions on GPU tensor cores; on CPU it only costs copies.
        return cls(dev, resolve_amp(amp, dev), channels_last and dev.type == "cuda", *rank_and_world())

    def autocast(self):
        """The autocast context of the run's mixed precision (float32 when off)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def images(self, images):
        """Move a uint8 batch to the device (non-blocking) in the memory format the model expects; with
        face features ({"images", "faces"}, training.model.Inputs) both parts."""
        if isinstance(images, dict):
            return {"images": self.images(images["images"]), "faces": images["faces"].to(self.device, non_blocking=True)}
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images


# ---------------------------------------------------------------------------- several processes
# `torchrun --nproc_per_node=N -m maskcls train ...` starts N processes with RANK, WORLD_SIZE and
# LOCAL_RANK set; every process trains on its shard of each epoch (DistributedDataParallel averages the
# gradients), validates its shard, and the shards' probabilities are gathered so every process takes
# the same decisions (best epoch, early stop). Only rank 0 writes files and draws progress bars.


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process is rank 0 (the one that writes files)."""
    return rank_and_world()[0] == 0


@contextlib.contextmanager
def distributed_from_env() -> Iterator[None]:
    """Join the process group torchrun describes in the environment (nothing to do for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        yield
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process under torchrun; nothing alone."""
    if rank_and_world()[1] > 1:
        dist.barrier()


def all_mean(value: float) -> float:
    """The mean of a number over all processes (the number itself for one)."""
    if rank_and_world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / rank_and_world()[1]


def gather_rows(rows: np.ndarray, values: np.ndarray, total: int) -> np.ndarray:
    """Every process's (row indices, values) -> the full (total, ...) array, on every process."""
    if rank_and_world()[1] == 1:
        return values
    parts: list = [None] * rank_and_world()[1]
    dist.all_gather_object(parts, (rows, values))
    out = np.zeros((total, *values.shape[1:]), dtype=values.dtype)
    for r, v in parts:
        out[r] = v
    return out


def sync_buffers(model: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics). DDP broadcasts them at the
    start of each training forward, so after the last step each process holds statistics updated by
    its own batch; validation and the saved checkpoint must all use rank 0's."""
    if rank_and_world()[1] == 1:
        return
    for buf in model.buffers():
        dist.broadcast(buf.data, src=0)


_OOM_TEXT = ("DefaultCPUAllocator", "out of memory", "can't allocate memory", "Cannot allocate memory", "MemoryError")


def is_out_of_memory(exc: BaseException) -> bool:
    """A failed allocation anywhere in a training step: numpy's MemoryError, torch's CPU allocator
    (a RuntimeError naming DefaultCPUAllocator), CUDA's OutOfMemoryError, or either re-raised from a
    DataLoader worker (its text names it)."""
    return isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and any(t in str(exc) for t in _OOM_TEXT))


def out_of_memory_error(batch_size: int, size: str, device: str) -> UserError:
    """The one line for a batch that does not fit: the RAM-cache estimate covers the photos kept in
    memory, not one batch's tensors and activations, which grow with the image area."""
    where = "GPU" if str(device).startswith("cuda") else "RAM"
    return UserError(f"out of memory ({where}) training a batch of {batch_size} photos at {size}; lower data.size "
                     f"(--set data.size=WxH) or train.batch_size (--set train.batch_size={max(1, batch_size // 2)})")

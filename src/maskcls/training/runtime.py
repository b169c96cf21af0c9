"""Where and how tensors run: the device, the autocast dtype, channels_last. One home, so training,
prediction and benchmarks make the same choice from the same settings."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when a GPU is visible, else cpu; cuda without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda asked for, but no CUDA GPU is visible; use auto or cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def resolve_amp(name: str, device: torch.device) -> torch.dtype | None:
    """auto -> bf16 (fp16 where bf16 is missing) on GPU, none on CPU; explicit names are honoured."""
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

    @classmethod
    def from_settings(cls, *, device: str, amp: str, channels_last: bool) -> "Runtime":
        dev = resolve_device(device)
        # channels_last helps convolutions on GPU tensor cores; on CPU it only costs copies.
        return cls(dev, resolve_amp(amp, dev), channels_last and dev.type == "cuda")

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """Move a uint8 batch to the device (non-blocking) in the memory format the model expects."""
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

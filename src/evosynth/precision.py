"""Synaptic precision restriction: after FP32 training, weights are cast to a lower precision.

The restricted values are what the generation is evaluated with, what is saved, and what the next generation
inherits as its DNA. On a CPU without native half-precision arithmetic the restricted weights are computed in
FP32 after rounding (``rounded``): the values are exactly the FP16 ones, the arithmetic is FP32.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def precision_dtype(precision: str) -> torch.dtype:
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}") from None


def _restrict_tensor(tensor: torch.Tensor, dtype: torch.dtype, name: str) -> torch.Tensor:
    if not tensor.is_floating_point():
        return tensor
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or Inf; refusing to restrict a diverged network")
    restricted = tensor.detach().to(dtype)
    if not torch.isfinite(restricted).all():
        raise ValueError(f"{name} overflows {dtype} (largest |value| {tensor.abs().max().item():.3g})")
    return restricted


def restrict(
    tensor_or_state_dict: torch.Tensor | Mapping[str, torch.Tensor], precision: str = "fp16"
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Cast every floating tensor (weights, biases, BatchNorm statistics) to ``precision``; integers pass."""
    dtype = precision_dtype(precision)
    if isinstance(tensor_or_state_dict, torch.Tensor):
        return _restrict_tensor(tensor_or_state_dict, dtype, "tensor")
    return {name: _restrict_tensor(t, dtype, name) for name, t in tensor_or_state_dict.items()}


def rounded(state_dict: Mapping[str, torch.Tensor], precision: str = "fp16") -> dict[str, torch.Tensor]:
    """The restricted values back in FP32 storage, for computing on hardware without that precision."""
    restricted = restrict(state_dict, precision)
    assert isinstance(restricted, dict)
    return {name: t.to(torch.float32) if t.is_floating_point() else t for name, t in restricted.items()}


def is_representable(tensor: torch.Tensor, precision: str = "fp16") -> bool:
    """True when every value survives a round trip through ``precision`` unchanged."""
    dtype = precision_dtype(precision)
    return bool(torch.equal(tensor.to(dtype).to(tensor.dtype), tensor))


def rounding_error(state_dict: Mapping[str, torch.Tensor], precision: str = "fp16") -> dict[str, float]:
    """Largest absolute change per floating tensor caused by the restriction (integer tensors are not restricted)."""
    after = rounded(state_dict, precision)
    return {
        name: float((after[name] - t.to(torch.float32)).abs().max()) if t.numel() else 0.0
        for name, t in state_dict.items()
        if t.is_floating_point()
    }

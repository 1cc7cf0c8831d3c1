"""Synaptic precision restriction: after FP32 training, weights are cast to a lower precision.

The restricted values are what the generation is evaluated with, what is saved, and what the next generation
inherits as its DNA. On a CPU without native half-precision arithmetic the restricted weights are computed in
FP32 after rounding (``rounded``): the values are exactly the FP16 ones, the arithmetic is FP32.

Precisions: ``fp32`` (no restriction), ``fp16`` and ``bf16`` (every floating tensor is cast, and stored in
safetensors in that dtype), and ``int8``: every synapse tensor (a weight with an output and an input dimension)
is quantized symmetrically per output channel, q = round(w / scale) with |q| <= 127 and scale = max|w| / 127 of
the channel (rounded up to 17 significant bits, so that q x scale is exact in FP32 and restricting twice changes
nothing). This is fake quantization, as in quantization-aware research: the values q x scale are what the network
computes with, and they are stored in safetensors as FP32 tensors (4 bytes per weight, not 1); ``int8_codes``
recovers the int8 codes and the per-channel FP32 scales from them exactly. BatchNorm parameters and statistics
and biases stay FP32, as in int8 deployment (BatchNorm is folded into the conv, biases are kept wider).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

# the dtype each precision codes a synapse in (int8: the codes; their values are stored as FP32, see above)
PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.int8,
}
INT8_LIMIT = 127  # symmetric: -127..127, so that +x and -x are both representable
SCALE_BITS = 17  # FP32 has a 24-bit significand and |q| <= 127 needs 7 bits: q x scale is exact


def precision_dtype(precision: str) -> torch.dtype:
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}") from None


def _channel_view(tensor: torch.Tensor) -> tuple[int, ...]:
    """Shape that broadcasts one value per output channel (dim 0) over a weight."""
    return (-1,) + (1,) * (tensor.dim() - 1)


def int8_scale(weight: torch.Tensor) -> torch.Tensor:
    """Per-output-channel scale max|w| / 127, rounded up to ``SCALE_BITS`` significant bits (1 for an all-zero
    channel): rounding up keeps every |w| / scale <= 127, the short significand makes q x scale exact in FP32."""
    largest = weight.detach().abs().reshape(weight.shape[0], -1).amax(dim=1).to(torch.float32)
    mantissa, exponent = torch.frexp(largest / INT8_LIMIT)
    scale = torch.ldexp(torch.ceil(mantissa * 2**SCALE_BITS) / 2**SCALE_BITS, exponent)
    return torch.where(largest > 0, scale, torch.ones_like(scale))


def int8_codes(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The int8 codes q and per-output-channel FP32 scales of a synapse tensor: w ~ q x scale, |q| <= 127.

    Applied to an int8-restricted (stored) tensor it returns its codes and scales exactly.
    """
    if weight.dim() < 2:
        raise ValueError(f"int8 quantizes synapse tensors (an output and an input dimension), got shape "
                         f"{tuple(weight.shape)}")
    scale = int8_scale(weight)
    codes = torch.round(weight.detach().to(torch.float32) / scale.reshape(_channel_view(weight)))
    return codes.clamp(-INT8_LIMIT, INT8_LIMIT).to(torch.int8), scale


def _fake_quantize_int8(tensor: torch.Tensor) -> torch.Tensor:
    """Synapse tensors onto their per-channel int8 grid (values q x scale, FP32); other tensors unchanged."""
    if tensor.dim() < 2:
        return tensor.detach()
    codes, scale = int8_codes(tensor)
    return codes.to(torch.float32) * scale.reshape(_channel_view(tensor))


def _restrict_tensor(tensor: torch.Tensor, precision: str, name: str) -> torch.Tensor:
    if not tensor.is_floating_point():
        return tensor
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or Inf; refusing to restrict a diverged network")
    if precision == "int8":
        return _fake_quantize_int8(tensor)
    dtype = precision_dtype(precision)
    restricted = tensor.detach().to(dtype)
    if not torch.isfinite(restricted).all():
        raise ValueError(f"{name} overflows {dtype} (largest |value| {tensor.abs().max().item():.3g})")
    return restricted


def restrict(
    tensor_or_state_dict: torch.Tensor | Mapping[str, torch.Tensor], precision: str = "fp16"
) -> torch.Tensor | dict[str, torch.Tensor]:
    """Cast every floating tensor (weights, biases, BatchNorm statistics) to ``precision``; integers pass.

    ``int8`` quantizes synapse tensors only, per output channel, and returns them in FP32 (see the module's text).
    """
    precision_dtype(precision)  # refuses an unknown precision
    if isinstance(tensor_or_state_dict, torch.Tensor):
        return _restrict_tensor(tensor_or_state_dict, precision, "tensor")
    return {name: _restrict_tensor(t, precision, name) for name, t in tensor_or_state_dict.items()}


def storage_note(precision: str) -> str:
    """How a generation's weights are stored and computed with, for its metrics (read without this module)."""
    precision_dtype(precision)
    if precision == "fp32":
        return "no restriction: weights stored and evaluated in FP32"
    if precision == "int8":
        return ("synapses fake-quantized to int8 per output channel (symmetric): stored as FP32 values q x scale, "
                "|q| <= 127; BatchNorm and biases FP32; evaluated in FP32 arithmetic")
    return "weights stored in the restricted precision; evaluated in FP32 arithmetic on CPU"


def rounded(state_dict: Mapping[str, torch.Tensor], precision: str = "fp16") -> dict[str, torch.Tensor]:
    """The restricted values back in FP32 storage, for computing on hardware without that precision."""
    restricted = restrict(state_dict, precision)
    assert isinstance(restricted, dict)
    return {name: t.to(torch.float32) if t.is_floating_point() else t for name, t in restricted.items()}


def is_representable(tensor: torch.Tensor, precision: str = "fp16") -> bool:
    """True when every value survives a round trip through ``precision`` unchanged."""
    dtype = precision_dtype(precision)
    if precision == "int8":
        return bool(torch.equal(_fake_quantize_int8(tensor).to(tensor.dtype), tensor))
    return bool(torch.equal(tensor.to(dtype).to(tensor.dtype), tensor))


def rounding_error(state_dict: Mapping[str, torch.Tensor], precision: str = "fp16") -> dict[str, float]:
    """Largest absolute change per floating tensor caused by the restriction (integer tensors are not restricted)."""
    after = rounded(state_dict, precision)
    return {
        name: float((after[name] - t.to(torch.float32)).abs().max()) if t.numel() else 0.0
        for name, t in state_dict.items()
        if t.is_floating_point()
    }

"""The synaptic precision restriction: every float cast, integers kept, int8 on its grid, bad values refused."""

from __future__ import annotations

import pytest
import torch

from conftest import detector, trained_looking_model
from evosynth.core.precision import int8_codes, is_representable, restrict, rounded, rounding_error

# ------------------------------------------------------------------------------------------------------ int8


def test_int8_is_per_channel_symmetric_on_the_grid():
    torch.manual_seed(1)
    weight = torch.randn(5, 4, 3, 3) * torch.tensor([1e-3, 0.1, 1.0, 7.0, 0.0]).reshape(-1, 1, 1, 1)
    restricted = restrict(weight, "int8")
    codes, scale = int8_codes(weight)
    assert codes.dtype == torch.int8 and codes.abs().max() <= 127
    assert torch.equal(restricted, codes.to(torch.float32) * scale.reshape(-1, 1, 1, 1))  # values on the grid
    assert ((weight - restricted).abs() <= scale.reshape(-1, 1, 1, 1) / 2).all()
    largest = codes.reshape(5, -1).abs().max(dim=1).values
    assert largest[:4].tolist() == [127] * 4 and largest[4] == 0  # each channel's own symmetric range
    assert len(set(scale[:4].tolist())) == 4  # one scale per output channel
    assert torch.equal(restrict(restricted, "int8"), restricted) and is_representable(restricted, "int8")
    recovered_codes, recovered_scale = int8_codes(restricted)  # what safetensors stores gives the codes back
    assert torch.equal(recovered_codes, codes) and torch.equal(recovered_scale, scale)


def test_int8_restricts_synapses_only_and_fp16_is_unchanged():
    state = detector().state_dict()
    int8 = rounded(state, "int8")
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.dim() >= 2:
            assert not torch.equal(int8[name], tensor) and is_representable(int8[name], "int8")
        else:
            assert torch.equal(int8[name], tensor)  # BatchNorm, biases, counters: FP32 as they were
    fp16 = restrict(state, "fp16")
    assert all(t.dtype == torch.float16 for k, t in fp16.items() if state[k].is_floating_point())


def test_restrict_casts_every_float_and_keeps_integers():
    state = trained_looking_model().state_dict()
    restricted = restrict(state, "fp16")
    for name, tensor in restricted.items():
        if state[name].is_floating_point():
            assert tensor.dtype == torch.float16, name
        else:
            assert torch.equal(tensor, state[name])
    for tensor in rounded(state, "fp16").values():
        if tensor.is_floating_point():
            assert tensor.dtype == torch.float32 and is_representable(tensor, "fp16")
    assert not is_representable(torch.tensor([1.0 + 2**-12]), "fp16")


def test_restrict_refuses_nan_overflow_and_unknown_precision():
    with pytest.raises(ValueError, match="w contains NaN"):
        restrict({"w": torch.tensor([float("nan")])})
    with pytest.raises(ValueError, match="overflows"):
        restrict(torch.tensor([1e6]), "fp16")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        restrict(torch.ones(1), "fp8")


def test_rounding_error_is_measured_on_floating_tensors_only():
    state = {"w": torch.tensor([1.0 + 2**-12, 2.0]), "steps": torch.tensor(3)}
    errors = rounding_error(state, "fp16")
    assert set(errors) == {"w"}
    assert errors["w"] == pytest.approx(2**-12)

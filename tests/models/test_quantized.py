"""biomamba's quantized layer format (`biomamba.models.quantized`): the int8 kernel against torchao's, int4
packing and its error bound, group sizes. Producing and reloading whole models: tests/compress/test_quantize.py."""

from __future__ import annotations

import torch
from torch import nn

from biomamba.models.quantized import QuantLinear, pack_int4, quantize_weight, unpack_int4


def test_int8_kernel_matches_torchao() -> None:
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    linear = nn.Linear(64, 48)
    x = torch.randn(5, 64)
    ours = QuantLinear.from_linear(linear, bits=8, group_size=64)  # one group per row = per channel
    theirs = nn.Sequential(nn.Linear(64, 48))
    theirs[0].load_state_dict(linear.state_dict())
    quantize_(theirs, Int8WeightOnlyConfig())
    tensor = theirs[0].weight
    torch.testing.assert_close(ours.scales, tensor.scale.to(ours.scales.dtype))
    diff = (ours.qweight.int() - tensor.qdata.int()).abs()
    assert diff.max() <= 1 and (diff == 0).float().mean() > 0.99  # only rounding ties may differ
    bound = x.abs() @ (diff.float() * tensor.scale).T  # one step per tie-rounded weight
    with torch.no_grad():
        assert ((ours(x) - theirs(x)).abs() <= bound + 1e-5).all()
    assert (ours(x) - linear(x)).abs().max() > 0  # really quantized


def test_int4_pack_roundtrip_and_error_bound() -> None:
    q = torch.randint(0, 16, (7, 9), dtype=torch.uint8)
    assert torch.equal(unpack_int4(pack_int4(q), 9), q)
    w = torch.randn(16, 64)
    layer_w = nn.Linear(64, 16, bias=False)
    layer_w.weight.data = w
    layer = QuantLinear.from_linear(layer_w, 4, 32)
    _, scales, _ = quantize_weight(w, 4, 32)
    err = (layer.dequantize() - w).abs().view(16, 2, 32)
    assert (err <= scales[..., None] / 2 + 1e-6).all()
    assert layer.qweight.dtype == torch.uint8 and layer.qweight.shape == (16, 32)


def test_group_size_falls_back_to_rows_when_it_does_not_divide() -> None:
    layer = QuantLinear.from_linear(nn.Linear(24, 8), 4, 16)
    assert layer.group_size == 24 and layer.scales.shape == (8, 1)

"""biomamba's quantized model directory: its layers (`QuantLinear`), int4 packing, writing and reading.

The format (layout in docs/formats.md, "Quantized model directory") lives here with every other on-disk
model format, so `biomamba.models.load_model` reads it like any model directory; `biomamba.compress.quantize`
only produces it (choosing the layers and the backend of each).
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from biomamba.errors import CheckpointError, refused_pickle
from biomamba.models.checkpoint import TOKENIZER_FILES, copy_files, detect_format, mamba2_config
from biomamba.models.mamba2 import Mamba2LMHeadModel
from biomamba.utils.atomic import atomic_dir, write_json

FORMAT = "biomamba-quantized/1"
QUANT_FILE = "quantization.json"
TORCH_FILE = "model.pt"
SAFETENSORS_FILE = "model.safetensors"
COPIED_FILES = ("config.json", "generation_config.json", *TOKENIZER_FILES)


class QuantLinear(nn.Module):
    """Weight-only quantized Linear: int8 (symmetric) or int4 (asymmetric, packed two per byte), per group.

    Why dequantize-then-matmul: it is exact to the stored values and works on every device and dtype; the
    memory at rest is what shrinks (int4: ~1/8 of fp32 plus scales). torchao's kernels are used instead
    wherever they apply.
    """

    def __init__(
        self, in_features: int, out_features: int, bits: int, group_size: int, bias: bool, dtype: torch.dtype
    ) -> None:
        super().__init__()
        if bits not in (4, 8):
            raise ValueError("bits must be 4 or 8")
        self.in_features, self.out_features, self.bits = in_features, out_features, bits
        self.group_size = group_size if in_features % group_size == 0 else in_features
        groups = in_features // self.group_size
        if bits == 8:
            self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        else:
            self.register_buffer(
                "qweight", torch.zeros(out_features, math.ceil(in_features / 2), dtype=torch.uint8)
            )
            self.register_buffer("zeros", torch.zeros(out_features, groups, dtype=dtype))
        self.register_buffer("scales", torch.ones(out_features, groups, dtype=dtype))
        self.bias = (
            nn.Parameter(torch.zeros(out_features, dtype=dtype), requires_grad=False) if bias else None
        )

    @classmethod
    def from_linear(cls, linear: nn.Module, bits: int, group_size: int) -> QuantLinear:
        """From an nn.Linear, or transformers' GPT-2 Conv1D (a Linear with its weight stored transposed)."""
        weight = linear.weight.detach()
        if is_conv1d(linear):
            weight = weight.T
        in_features, out_features = in_out(linear)
        layer = cls(in_features, out_features, bits, group_size, linear.bias is not None, weight.dtype)
        layer.to(weight.device)
        q, scales, zeros = quantize_weight(weight.float(), bits, layer.group_size)
        layer.qweight.copy_(q if bits == 8 else pack_int4(q))
        layer.scales.copy_(scales.to(weight.dtype))
        if bits == 4:
            layer.zeros.copy_(zeros.to(weight.dtype))
        if linear.bias is not None:
            layer.bias.data.copy_(linear.bias.detach())
        return layer

    def dequantize(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        dtype = dtype or self.scales.dtype
        q = self.qweight if self.bits == 8 else unpack_int4(self.qweight, self.in_features)
        grouped = q.to(dtype).view(self.out_features, -1, self.group_size)
        weight = grouped * self.scales.to(dtype)[..., None]
        if self.bits == 4:
            weight = weight + self.zeros.to(dtype)[..., None]
        return weight.view(self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.dequantize(x.dtype), bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, int{self.bits}, group_size={self.group_size}"


def quantize_weight(
    weight: torch.Tensor, bits: int, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(integer values, scales, zero points) of a [out, in] weight, one scale per `group_size` inputs.

    int8: symmetric, scale = max|w| / 127.5 (torchao's int8 weight-only scheme). int4: asymmetric over [min, max]
    with 16 levels, w ~ q * scale + min (torchao/tinygemm's scheme), q in 0..15.
    """
    out_features, in_features = weight.shape
    grouped = weight.reshape(out_features, in_features // group_size, group_size)
    eps = torch.finfo(torch.float32).eps
    if bits == 8:
        scales = (grouped.abs().amax(dim=-1) / 127.5).clamp(min=eps)
        q = torch.round(grouped / scales[..., None]).clamp(-128, 127).to(torch.int8)
        return q.reshape(out_features, in_features), scales, None
    low, high = grouped.amin(dim=-1), grouped.amax(dim=-1)
    scales = ((high - low) / 15.0).clamp(min=eps)
    q = torch.round((grouped - low[..., None]) / scales[..., None]).clamp(0, 15).to(torch.uint8)
    return q.reshape(out_features, in_features), scales, low


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Two 4-bit values per byte (even column in the low nibble); odd widths padded with one zero."""
    if q.shape[-1] % 2:
        q = F.pad(q, (0, 1))
    return (q[..., 0::2] | (q[..., 1::2] << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor, width: int) -> torch.Tensor:
    low, high = packed & 0x0F, packed >> 4
    return torch.stack([low, high], dim=-1).reshape(*packed.shape[:-1], -1)[..., :width]


def is_conv1d(module: nn.Module) -> bool:
    """transformers' GPT-2 Conv1D: a Linear whose weight is stored [in, out]."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def in_out(module: nn.Module) -> tuple[int, int]:
    if is_conv1d(module):
        return module.weight.shape[0], module.weight.shape[1]
    return module.in_features, module.out_features


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


# ---------------------------------------------------------------------------------------------------------
# The directory


def save_quantized(
    model: nn.Module, record: dict[str, Any], source_dir: str | Path, out_dir: str | Path
) -> Path:
    """Write a quantized model directory (config and tokenizer copied from the source model directory)."""
    state = dict(model.state_dict())
    tied = _tied_head(model)
    if tied:
        state.pop("lm_head.weight", None)
    uses_torchao = any(layer["backend"] == "torchao" for layer in record["layers"].values())
    with atomic_dir(out_dir) as tmp:
        copy_files(source_dir, tmp, COPIED_FILES)
        if uses_torchao:
            torch.save(state, tmp / TORCH_FILE)
        else:
            from safetensors.torch import save_file

            save_file(
                {k: v.contiguous() for k, v in state.items()},
                str(tmp / SAFETENSORS_FILE),
                metadata={"format": "pt"},
            )
        write_json(
            tmp / QUANT_FILE,
            {**record, "tied_head": tied, "weights": TORCH_FILE if uses_torchao else SAFETENSORS_FILE},
        )
    return Path(out_dir)


def _tied_head(model: nn.Module) -> bool:
    head = getattr(model, "lm_head", None)
    embed = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return bool(head is not None and embed is not None and getattr(head, "weight", None) is embed.weight)


def is_quantized_dir(path: str | Path) -> bool:
    """True for a local directory written by `biomamba quantize` (it holds quantization.json)."""
    return (Path(path) / QUANT_FILE).is_file()


def read_quantization(model_dir: str | Path) -> dict[str, Any]:
    """The directory's quantization.json, checked to be this format."""
    path = Path(model_dir) / QUANT_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read ({exc})") from None
    if record.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown format {record.get('format')!r}")
    return record


def _skeleton(model_dir: Path) -> nn.Module:
    """The directory's architecture with its parameters on the meta device (no memory, no init): every
    parameter is then assigned from the saved state, so loading never holds an unquantized copy. Buffers stay
    real, since some are not saved (rotary frequencies) and must keep their computed values."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        if detect_format(model_dir) in ("hf", "mamba-ssm"):
            return Mamba2LMHeadModel(mamba2_config(model_dir))  # a tied head is re-tied once loaded
        from transformers import AutoConfig, AutoModelForCausalLM

        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(model_dir)))


def load_quantized(model_dir: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model saved by `save_quantized` (eval mode); `biomamba.models.load_model` calls this."""
    model_dir = Path(model_dir)
    record = read_quantization(model_dir)
    model = _skeleton(model_dir)
    weights_file = model_dir / record["weights"]
    if record["weights"] == TORCH_FILE:
        import torchao  # noqa: F401 - registers torchao's tensor subclasses as safe to unpickle

        try:
            state = torch.load(weights_file, map_location=device, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise (refused_pickle(weights_file, exc) or exc) from None
    else:
        from safetensors.torch import load_file

        state = load_file(str(weights_file))
    for name, layer in record["layers"].items():
        if layer["backend"] == "biomamba":
            linear = model.get_submodule(name)
            dtype = state[f"{name}.scales"].dtype
            in_f, out_f = in_out(linear)
            ql = QuantLinear(in_f, out_f, layer["bits"], layer["group_size"], linear.bias is not None, dtype)
            set_module(model, name, ql)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not (record.get("tied_head") and k == "lm_head.weight")]
    if missing or unexpected:
        raise CheckpointError(f"{weights_file}: missing {missing[:5]} unexpected {unexpected[:5]}")
    if record.get("tied_head"):
        model.lm_head.weight = model.get_input_embeddings().weight
    left = [name for name, param in model.named_parameters() if param.is_meta]
    if left:
        raise CheckpointError(f"{weights_file}: no saved values for {left[:5]}")
    return model.to(device).eval()

"""Weight-only int8 / int4 quantization of any biomamba model, with save and reload.

Backends, per Linear layer:
- torchao (`quantize_` with Int8WeightOnlyConfig / Int4WeightOnlyConfig): int8 on CPU and GPU, int4 on CUDA
  (tinygemm layout). torchao 0.18 has no CPU int4 kernel, and its int4 layout needs bf16 weights and
  shapes it accepts;
- biomamba's `QuantLinear` everywhere torchao cannot: weights stored as int8 or packed int4 (two per byte)
  with per-group scales (and zero points for int4, asymmetric like torchao's), dequantized group-wise on
  the fly. It is tested against torchao's int8 (tests/compress/test_quantize.py).
- bitsandbytes (8-bit LLM.int8, 4-bit NF4/FP4) at load time, CUDA only.

Only nn.Linear layers are quantized (Mamba2's in_proj/out_proj, attention and MLP projections); embeddings,
norms, Mamba2's conv1d and SSM parameters stay in full precision, as does the output head by default.

A quantized directory holds `config.json`, the tokenizer, `quantization.json` (method and, per layer, the
backend used) and the weights: `model.safetensors` when every layer is biomamba's (plain tensors), or
`model.pt` (torch.save of the state dict, loaded with weights_only=True) when torchao tensor subclasses,
which safetensors cannot hold, are present. `load_quantized` rebuilds the model from that directory.
"""

from __future__ import annotations

import copy
import gc
import json
import math
import pickle
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from biomamba.errors import BiomambaError, CheckpointError, refused_pickle
from biomamba.utils.atomic import atomic_dir, write_json

FORMAT = "biomamba-quantized/1"
QUANT_FILE = "quantization.json"
TORCH_FILE = "model.pt"
SAFETENSORS_FILE = "model.safetensors"
BNB_METHODS = ("bnb-int8", "bnb-nf4", "bnb-fp4")
COPIED_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
)


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
        if _is_conv1d(linear):
            weight = weight.T
        in_features, out_features = _in_out(linear)
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


# ---------------------------------------------------------------------------------------------------------
# Applying quantization


def _is_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def _in_out(module: nn.Module) -> tuple[int, int]:
    if _is_conv1d(module):
        return module.weight.shape[0], module.weight.shape[1]
    return module.in_features, module.out_features


def _linears(model: nn.Module, skip: Iterable[str]) -> list[tuple[str, nn.Module]]:
    """Linear layers (and GPT-2's Conv1D, which is one) whose names contain none of `skip`."""
    skip = tuple(skip)
    return [
        (n, m)
        for n, m in model.named_modules()
        if (type(m) is nn.Linear or _is_conv1d(m)) and not any(s in n for s in skip)
    ]


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def _torchao_config(bits: int, group_size: int) -> Any:
    from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, PerGroup

    if bits == 8:
        return (
            Int8WeightOnlyConfig(granularity=PerGroup(group_size)) if group_size else Int8WeightOnlyConfig()
        )
    return Int4WeightOnlyConfig(group_size=group_size, int4_packing_format="tile_packed_to_4d")


def _torchao_quantize_one(model: nn.Module, name: str, bits: int, group_size: int) -> bool:
    """Quantize one Linear with torchao; False (model untouched) where torchao cannot handle it."""
    try:
        from torchao.quantization import quantize_
    except ImportError:
        return False
    linear = model.get_submodule(name)
    weight = linear.weight
    if type(linear) is not nn.Linear:
        return False  # torchao quantizes nn.Linear only (not GPT-2's Conv1D)
    if bits == 4 and (weight.device.type != "cuda" or weight.dtype != torch.bfloat16):
        return False  # torchao 0.18's int4 kernel (tinygemm) is CUDA + bf16 only
    if linear.in_features % group_size:
        return False
    trial = copy.deepcopy(linear)
    try:
        quantize_(trial, _torchao_config(bits, group_size), filter_fn=lambda m, _n: isinstance(m, nn.Linear))
        with torch.no_grad():
            trial(torch.zeros(1, linear.in_features, device=weight.device, dtype=weight.dtype))
    except Exception:  # noqa: BLE001 - any torchao refusal means: use biomamba's kernel for this layer
        return False
    _set_module(model, name, trial)
    return True


def quantize_model(
    model: nn.Module,
    method: str,
    group_size: int = 128,
    backend: str = "auto",
    skip_modules: Iterable[str] = ("lm_head",),
) -> dict[str, Any]:
    """Quantize the Linear layers of `model` in place; return the record saved as quantization.json."""
    if method in BNB_METHODS:
        raise BiomambaError(f"{method} is applied while loading: use load_bitsandbytes(model_dir, method)")
    bits = {"int8": 8, "int4": 4}.get(method)
    if bits is None:
        raise BiomambaError(f"unknown quantization method {method!r} (int8, int4, {', '.join(BNB_METHODS)})")
    layers: dict[str, dict[str, Any]] = {}
    for name, linear in _linears(model, skip_modules):
        used = "biomamba"
        if backend in ("auto", "torchao") and _torchao_quantize_one(model, name, bits, group_size):
            used = "torchao"
        elif backend == "torchao":
            raise BiomambaError(f"torchao cannot quantize layer {name} to {method} here; use --backend auto")
        else:
            _set_module(model, name, QuantLinear.from_linear(linear, bits, group_size))
        in_features = _in_out(linear)[0]
        actual_group = group_size if in_features % group_size == 0 else in_features
        layers[name] = {"backend": used, "bits": bits, "group_size": actual_group}
    if not layers:
        raise BiomambaError("no Linear layer to quantize (all skipped?)")
    return {
        "format": FORMAT,
        "method": method,
        "group_size": group_size,
        "skip_modules": list(skip_modules),
        "layers": layers,
    }


# ---------------------------------------------------------------------------------------------------------
# Saving and loading


def save_quantized(
    model: nn.Module, record: dict[str, Any], source_dir: str | Path, out_dir: str | Path
) -> Path:
    """Write a quantized model directory (config and tokenizer copied from the source model directory)."""
    source = Path(source_dir)
    state = {k: v for k, v in model.state_dict().items()}
    tied = _tied_head(model)
    if tied:
        state.pop("lm_head.weight", None)
    uses_torchao = any(layer["backend"] == "torchao" for layer in record["layers"].values())
    with atomic_dir(out_dir) as tmp:
        for name in COPIED_FILES:
            if (source / name).is_file():
                shutil.copy2(source / name, tmp / name)
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
    return (Path(path) / QUANT_FILE).is_file()


def _skeleton(model_dir: Path) -> nn.Module:
    """The directory's architecture with its parameters on the meta device (no memory, no init): every
    parameter is then assigned from the saved state, so loading never holds an unquantized copy. Buffers stay
    real, since some are not saved (rotary frequencies) and must keep their computed values."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        return _architecture(model_dir)


def _architecture(model_dir: Path) -> nn.Module:
    from biomamba.models.checkpoint import config_from_hf, config_from_ssm, detect_format, read_config

    fmt = detect_format(model_dir)
    if fmt in ("hf", "mamba-ssm"):
        from biomamba.models import Mamba2LMHeadModel

        data = read_config(model_dir)
        cfg = config_from_hf(data) if fmt == "hf" else config_from_ssm(data)
        model = Mamba2LMHeadModel(cfg)
        if cfg.tie_embeddings:
            model.lm_head.weight = model.backbone.embeddings.weight
        return model
    from transformers import AutoConfig, AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(model_dir)))


def load_quantized(model_dir: str | Path, device: str = "cpu") -> nn.Module:
    """Rebuild a model saved by `save_quantized` (eval mode)."""
    model_dir = Path(model_dir)
    try:
        record = json.loads((model_dir / QUANT_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{model_dir / QUANT_FILE}: cannot read ({exc})") from None
    if record.get("format") != FORMAT:
        raise CheckpointError(f"{model_dir / QUANT_FILE}: unknown format {record.get('format')!r}")
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
            in_f, out_f = _in_out(linear)
            ql = QuantLinear(in_f, out_f, layer["bits"], layer["group_size"], linear.bias is not None, dtype)
            _set_module(model, name, ql)
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


def load_bitsandbytes(model_dir: str | Path, method: str, device: str = "cuda") -> nn.Module:
    """Load a model with bitsandbytes 8-bit or 4-bit (NF4/FP4) Linear layers; CUDA only."""
    if not torch.cuda.is_available() or not str(device).startswith("cuda"):
        raise BiomambaError(f"{method} (bitsandbytes) needs a CUDA GPU; on CPU use --method int8 or int4")
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise BiomambaError(f"{method} needs bitsandbytes: pip install bitsandbytes") from None
    from biomamba.models import family, load_model

    model_dir = Path(model_dir)
    from biomamba.models.checkpoint import detect_format

    if detect_format(model_dir) == "transformers":
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        qcfg = (
            BitsAndBytesConfig(load_in_8bit=True)
            if method == "bnb-int8"
            else BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=method.removeprefix("bnb-"),
                bnb_4bit_compute_dtype=torch.bfloat16,
            )
        )
        return AutoModelForCausalLM.from_pretrained(
            str(model_dir), quantization_config=qcfg, device_map=device
        ).eval()
    model = load_model(model_dir, dtype="float16" if method == "bnb-int8" else "bfloat16")
    assert family(model) == "mamba2"
    for name, linear in _linears(model, ("lm_head",)):
        if method == "bnb-int8":
            new = bnb.nn.Linear8bitLt(
                linear.in_features, linear.out_features, bias=linear.bias is not None, has_fp16_weights=False
            )
            new.weight = bnb.nn.Int8Params(
                linear.weight.data.cpu(), requires_grad=False, has_fp16_weights=False
            )
        else:
            new = bnb.nn.Linear4bit(
                linear.in_features,
                linear.out_features,
                bias=linear.bias is not None,
                compute_dtype=torch.bfloat16,
                quant_type=method.removeprefix("bnb-"),
            )
            new.weight = bnb.nn.Params4bit(
                linear.weight.data.cpu(), requires_grad=False, quant_type=method.removeprefix("bnb-")
            )
        if linear.bias is not None:
            new.bias = nn.Parameter(linear.bias.data, requires_grad=False)
        _set_module(model, name, new)
    return model.to(device).eval()  # bitsandbytes quantizes the weights as they move to the GPU


def load_any(model_dir: str | Path, *, device: str = "cpu", dtype: str | None = None) -> nn.Module:
    """A quantized directory through `load_quantized`, anything else through `biomamba.models.load_model`."""
    if is_quantized_dir(model_dir):
        return load_quantized(model_dir, device=device)
    from biomamba.models import load_model

    return load_model(model_dir, dtype=dtype, device=device)


def quantize(
    model_dir: str | Path, cfg: Any, output_dir: str | Path, methods: Sequence[str] | None = None
) -> dict[str, Any]:
    """`biomamba quantize`: quantize, save, reload from disk, and measure every variant against the reference.

    `methods` (default: `[cfg.method]`) gives one quantized variant, and one row of the table, each, all
    measured against the same unquantized reference. With one method `output_dir` is the quantized model
    directory; with several, each is saved under `output_dir/<method>`. The report
    (`quantization_report.md` / `.json`, in `output_dir`) has per variant: weight-file size, weight bytes,
    measured peak memory (CUDA: max_memory_allocated over load + decode, reset before each variant; CPU:
    peak RSS of a fresh process that loads the directory and decodes), decode tokens/s, and (when
    `eval_corpus` / `eval_tasks` are set) perplexity and accuracy deltas computed by the evaluation stage.
    The measured models are the ones reloaded from disk, so the table also proves the saved directories work.
    """
    from biomamba.compress.report import (
        measure_variant,
        process_peak_memory,
        prompt_ids,
        render_table,
        rows_to_json,
    )
    from biomamba.models import load_model, load_tokenizer

    methods = list(dict.fromkeys(methods or [cfg.method]))
    configs = [
        cfg if m == cfg.method else type(cfg).model_validate({**cfg.model_dump(), "method": m})
        for m in methods
    ]
    tokenizer = load_tokenizer(model_dir)
    out = Path(output_dir)
    device = str(cfg.device)
    cuda = device.startswith("cuda")
    measure = {
        "corpus": cfg.eval_corpus,
        "task_files": [str(t) for t in cfg.eval_tasks],
        "max_tokens": cfg.eval_max_tokens,
        "new_tokens": cfg.bench_new_tokens,
    }
    prompt = prompt_ids(tokenizer)

    def peak_then_reset(directory: Path) -> dict[str, int] | None:
        """CPU: the child process's peak, run while this process holds no model; CUDA: reset the counter."""
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            return None
        return process_peak_memory(directory, prompt, cfg.bench_new_tokens, vocab_size=len(tokenizer))

    peak = peak_then_reset(Path(model_dir))
    base = load_model(model_dir, device=device)
    rows = [
        measure_variant(
            "unquantized", base, tokenizer, model_dir, process_peak=peak, peak_since_load=True, **measure
        )
    ]
    del base
    for mcfg in configs:
        target = out if len(configs) == 1 else out / mcfg.method
        if mcfg.method in BNB_METHODS:
            model = load_bitsandbytes(model_dir, mcfg.method, device)
            if not hasattr(model, "save_pretrained"):
                raise BiomambaError(
                    f"{mcfg.method}: saving bitsandbytes layers is supported for transformers models only"
                )
            with atomic_dir(target) as tmp:
                model.save_pretrained(str(tmp))
                from biomamba.tokenizer import save_tokenizer

                save_tokenizer(tokenizer, tmp)
        else:
            model = load_model(model_dir, device=device)
            record = quantize_model(model, mcfg.method, mcfg.group_size, mcfg.backend, mcfg.skip_modules)
            save_quantized(model, record, model_dir, target)
        del model
        peak = peak_then_reset(target)
        if mcfg.method in BNB_METHODS:
            from transformers import AutoModelForCausalLM

            reloaded = AutoModelForCausalLM.from_pretrained(str(target), device_map=device).eval()
        else:
            reloaded = load_quantized(target, device=device)
        name = f"{mcfg.method} (g{mcfg.group_size})"
        rows.append(
            measure_variant(
                name, reloaded, tokenizer, target, process_peak=peak, peak_since_load=True, **measure
            )
        )
        del reloaded
    report = rows_to_json(rows, device)
    if len(configs) > 1:
        report["outputs"] = {c.method: str(out / c.method) for c in configs}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "quantization_report.json", report)
    (out / "quantization_report.md").write_text(render_table(rows, device))
    return report

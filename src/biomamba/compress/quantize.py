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

This module only produces quantized models: the directory format (`QuantLinear`, int4 packing, writing and
reading, docs/formats.md) belongs to `biomamba.models.quantized`, and `biomamba.models.load_model` reads it.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biomamba.errors import BiomambaError
from biomamba.models.quantized import FORMAT, QuantLinear, in_out, is_conv1d, save_quantized, set_module
from biomamba.utils.atomic import atomic_dir, write_json

BNB_METHODS = ("bnb-int8", "bnb-nf4", "bnb-fp4")


# ---------------------------------------------------------------------------------------------------------
# Applying quantization


def _linears(model: nn.Module, skip: Iterable[str]) -> list[tuple[str, nn.Module]]:
    """Linear layers (and GPT-2's Conv1D, which is one) whose names contain none of `skip`."""
    skip = tuple(skip)
    return [
        (n, m)
        for n, m in model.named_modules()
        if (type(m) is nn.Linear or is_conv1d(m)) and not any(s in n for s in skip)
    ]


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
    set_module(model, name, trial)
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
            set_module(model, name, QuantLinear.from_linear(linear, bits, group_size))
        in_features = in_out(linear)[0]
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


def load_bitsandbytes(model_dir: str | Path, method: str, device: str = "cuda") -> nn.Module:
    """Load a model with bitsandbytes 8-bit or 4-bit (NF4/FP4) Linear layers; CUDA only."""
    if not torch.cuda.is_available() or not str(device).startswith("cuda"):
        raise BiomambaError(f"{method} (bitsandbytes) needs a CUDA GPU; on CPU use --method int8 or int4")
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise BiomambaError(f"{method} needs bitsandbytes: pip install bitsandbytes") from None
    from biomamba.models import family_of_dir, load_model

    model_dir = Path(model_dir)
    quant_type = method.removeprefix("bnb-")  # nf4 / fp4 for the 4-bit methods
    if not family_of_dir(model_dir).native:
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        qcfg = (
            BitsAndBytesConfig(load_in_8bit=True)
            if method == "bnb-int8"
            else BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=quant_type,
                bnb_4bit_compute_dtype=torch.bfloat16,
            )
        )
        return AutoModelForCausalLM.from_pretrained(
            str(model_dir), quantization_config=qcfg, device_map=device
        ).eval()
    model = load_model(model_dir, dtype="float16" if method == "bnb-int8" else "bfloat16")
    for name, linear in _linears(model, ("lm_head",)):
        shape, weight = (linear.in_features, linear.out_features), linear.weight.data.cpu()
        if method == "bnb-int8":
            new = bnb.nn.Linear8bitLt(*shape, bias=linear.bias is not None, has_fp16_weights=False)
            new.weight = bnb.nn.Int8Params(weight, requires_grad=False, has_fp16_weights=False)
        else:
            new = bnb.nn.Linear4bit(
                *shape, bias=linear.bias is not None, compute_dtype=torch.bfloat16, quant_type=quant_type
            )
            new.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type=quant_type)
        if linear.bias is not None:
            new.bias = nn.Parameter(linear.bias.data, requires_grad=False)
        set_module(model, name, new)
    return model.to(device).eval()  # bitsandbytes quantizes the weights as they move to the GPU


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
        "peak_since_load": True,  # peak_then_reset ran before each load
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
    rows = [measure_variant("unquantized", base, tokenizer, model_dir, process_peak=peak, **measure)]
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
            reloaded = load_model(target, device=device)
        name = f"{mcfg.method} (g{mcfg.group_size})"
        rows.append(measure_variant(name, reloaded, tokenizer, target, process_peak=peak, **measure))
        del reloaded
    report = rows_to_json(rows, device)
    if len(configs) > 1:
        report["outputs"] = {c.method: str(out / c.method) for c in configs}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "quantization_report.json", report)
    (out / "quantization_report.md").write_text(render_table(rows))
    return report

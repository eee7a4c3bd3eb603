"""LoRA and QLoRA through peft, for every family biomamba loads, and merge-and-unload to a plain checkpoint.

Target modules per family are the projections the published adapters used: Mamba2's `in_proj` and `out_proj`
(the mixer's two large matrices; the conv, dt and A parameters stay frozen), GPT-2's fused `c_attn`, `c_proj`
and `c_fc` (Conv1D layers, hence `fan_in_fan_out`), and the attention + MLP projections of Llama/Mistral
(BioMistral's SFT adapters). peft works on biomamba's own Mamba2 module as on any torch module, so one code
path serves every family.

QLoRA keeps the frozen base weights in 4-bit NF4 (bitsandbytes) and trains LoRA adapters on top. It needs
bitsandbytes and a CUDA GPU; anywhere else it is a clear error rather than a silent fall back to fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from torch import nn

from biomamba.errors import BiomambaError

LORA_TARGETS: dict[str, list[str]] = {
    "mamba2": ["in_proj", "out_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mixtral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}


def lora_targets(family: str, override: Sequence[str] | None = None) -> list[str]:
    """The module names LoRA wraps for a family (or the recipe's explicit list)."""
    if override:
        return list(override)
    if family not in LORA_TARGETS:
        raise BiomambaError(
            f"finetune.lora.target_modules: no default LoRA targets for model family '{family}' "
            f"(known: {', '.join(sorted(LORA_TARGETS))}); list the module names in the recipe"
        )
    return LORA_TARGETS[family]


def apply_lora(
    model: nn.Module,
    family: str,
    *,
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.05,
    target_modules: Sequence[str] | None = None,
) -> nn.Module:
    """Wrap `model` with LoRA adapters (base weights frozen); returns the peft model."""
    from peft import LoraConfig, get_peft_model

    targets = lora_targets(family, target_modules)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in present]
    if missing:
        raise BiomambaError(
            f"finetune.lora.target_modules: {missing} not found in the {family} model "
            f"(its linear layers: {sorted(_linear_names(model))})"
        )
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        fan_in_fan_out=family == "gpt2",
        bias="none",
    )
    with _pure_pytorch_mamba_type(model, family):
        return get_peft_model(model, config)


@contextlib.contextmanager
def _pure_pytorch_mamba_type(model: nn.Module, family: str) -> Iterator[None]:
    """Let peft wrap biomamba Mamba2's `out_proj`, which peft refuses for `model_type == "mamba2"`.

    peft's guard exists because transformers' Mamba2 CUDA path reads `out_proj.weight` inside a fused kernel,
    bypassing the module (and so the adapter). biomamba's Mamba2 always calls `self.out_proj(y)` (checked by
    the LoRA test: the merged weights reproduce the adapted logits), so the guard does not apply; the
    config's model_type is renamed only for the duration of the injection.
    """
    config = getattr(model, "config", None)
    from biomamba.models.mamba2 import Mamba2LMHeadModel

    if family != "mamba2" or not isinstance(model, Mamba2LMHeadModel) or config is None:
        yield
        return
    original = config.model_type
    config.model_type = "biomamba-mamba2"
    try:
        yield
    finally:
        config.model_type = original


def _linear_names(model: nn.Module) -> set[str]:
    return {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"
    }


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold the adapters into the base weights and drop peft: a plain model every stage can load."""
    if not hasattr(model, "merge_and_unload"):
        return model
    return model.merge_and_unload()


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, shared weights counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    return trainable, total


def check_qlora_available() -> None:
    """Raise a clear error unless bitsandbytes and a CUDA GPU are both present."""
    import torch

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise BiomambaError(
            "finetune.method: qlora needs bitsandbytes (pip install bitsandbytes) and a CUDA GPU; "
            "use method: lora on this machine"
        ) from None
    if not torch.cuda.is_available():
        raise BiomambaError("finetune.method: qlora needs a CUDA GPU (none found); use method: lora")


def load_model_4bit(model_dir: str, family: str, targets: Sequence[str]) -> nn.Module:
    """Load a model with its target linear layers in 4-bit NF4 for QLoRA (CUDA + bitsandbytes only).

    transformers families use `BitsAndBytesConfig`; biomamba's Mamba2 gets its target `nn.Linear`s swapped
    for `bitsandbytes.nn.Linear4bit` (weights quantised when moved to the GPU), which peft's LoRA wraps.
    """
    check_qlora_available()
    import torch

    if family != "mamba2":
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=quant, device_map={"": 0})
    else:
        from biomamba.models import load_model

        model = load_model(model_dir, dtype="bf16")
        _swap_linear_4bit(model, set(targets))
        model = model.to("cuda")
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def _swap_linear_4bit(model: nn.Module, targets: set[str]) -> None:
    import bitsandbytes as bnb
    import torch

    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name not in targets or not isinstance(child, nn.Linear):
                continue
            quantised: Any = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=torch.bfloat16,
                quant_type="nf4",
            )
            quantised.weight = bnb.nn.Params4bit(child.weight.data, requires_grad=False, quant_type="nf4")
            if child.bias is not None:
                quantised.bias = nn.Parameter(child.bias.data, requires_grad=False)
            setattr(module, child_name, quantised)
        del name

"""LoRA and QLoRA through peft, for every family biomamba loads, and merge-and-unload to a plain checkpoint.

Target modules per family are the projections the published adapters used (`FamilySpec.lora_targets` in
biomamba.models.families): Mamba2's `in_proj` and `out_proj` (the mixer's two large matrices; the conv, dt and
A parameters stay frozen), GPT-2's fused `c_attn`, `c_proj` and `c_fc` (Conv1D layers, hence
`fan_in_fan_out`), and the attention + MLP projections of Llama/Mistral (BioMistral's SFT adapters). peft
works on biomamba's own Mamba2 module as on any torch module, so one code path serves every family (its
model_type "biomamba-mamba2" keeps peft's guard for transformers' fused Mamba2 `out_proj` from applying).

QLoRA keeps the frozen base weights in 4-bit NF4 (bitsandbytes) and trains LoRA adapters on top. It needs
bitsandbytes and a CUDA GPU; anywhere else it is a clear error rather than a silent fall back to fp32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from biomamba.errors import BiomambaError


def lora_targets(family: str, override: Sequence[str] | None = None) -> list[str]:
    """The module names LoRA wraps for a family (or the recipe's explicit list)."""
    from biomamba.models.families import FAMILIES, family_named

    if override:
        return list(override)
    targets = family_named(family).lora_targets
    if not targets:
        known = sorted(spec.name for spec in FAMILIES if spec.lora_targets)
        raise BiomambaError(
            f"finetune.lora.target_modules: no default LoRA targets for model family '{family}' "
            f"(known: {', '.join(known)}); list the module names in the recipe"
        )
    return list(targets)


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

    from biomamba.models.families import family_named

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
        fan_in_fan_out=family_named(family).lora_fan_in_fan_out,
        bias="none",
    )
    return get_peft_model(model, config)


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

    from biomamba.models.families import family_named

    if not family_named(family).native:
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

    for module in list(model.modules()):
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

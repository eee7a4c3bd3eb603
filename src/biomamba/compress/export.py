"""`biomamba export`: a release directory a user can publish or copy to a hospital machine.

Layout:
    OUT/README.md                 model card: what, how trained (from the recipe), how good (from results)
    OUT/config.json, model.safetensors, tokenizer files, generation_config.json   (transformers format)
    OUT/mamba_ssm/                Mamba2 only: config.json + pytorch_model.bin for mamba-ssm's from_pretrained
    OUT/gguf/NAME-Q8_0.gguf       with --format gguf: one file per --quant for llama.cpp / Ollama / LM Studio
    OUT/biomamba/recipe.yaml      the training recipe, verbatim
    OUT/biomamba/results/*.json   the evaluation results the card quotes

A directory written by `biomamba quantize` (it holds quantization.json) is exported as it is stored: its
quantized weights, quantization.json, config and tokenizer are copied verbatim (they load with
`biomamba.models.load_model`, as in `biomamba generate/serve/eval`); no mamba_ssm copy.

Every number in the card is read from those results files; nothing is typed in by hand.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from biomamba.compress.config import ExportConfig
from biomamba.config import load_recipe_dict
from biomamba.errors import BiomambaError
from biomamba.models.families import family_named
from biomamba.utils.atomic import atomic_dir
from biomamba.utils.markdown import markdown_table


def export(model_dir: str | Path, cfg: ExportConfig, output_dir: str | Path) -> Path:
    """Write the release directory for `model_dir` (atomically: complete or absent)."""
    from biomamba.eval.results import read_results
    from biomamba.models import family_spec, load_model, load_tokenizer, save_model
    from biomamba.models.checkpoint import copy_files
    from biomamba.models.quantized import COPIED_FILES, QUANT_FILE, is_quantized_dir, read_quantization

    model_dir = Path(model_dir)
    tokenizer = load_tokenizer(model_dir)
    if "gguf" in (cfg.formats or ()) and is_quantized_dir(model_dir):
        raise BiomambaError(
            f"{model_dir}: GGUF is written from the unquantized model (its own q8_0/q4_k_m come from "
            "--quant); export the directory `biomamba quantize` read"
        )
    quantization = read_quantization(model_dir) if is_quantized_dir(model_dir) else None
    model = load_model(model_dir)
    spec = family_spec(model)
    fam = spec.name
    # by default every format the family is released in (`FamilySpec.release_formats`: a Mamba2 also gets the
    # mamba-ssm copy that ``state-spaces/mamba2-*`` users load), or only biomamba's own when quantized
    formats = cfg.formats or (["transformers"] if quantization else list(spec.release_formats))
    if "mamba_ssm" in formats and quantization:
        raise BiomambaError(
            f"{model_dir}: a quantized directory is exported in biomamba's quantized format only "
            "(drop --format mamba_ssm, or export the unquantized model)"
        )
    if "mamba_ssm" in formats and "mamba_ssm" not in spec.release_formats:
        raise BiomambaError(f"{model_dir}: the mamba_ssm format exists for Mamba2 only (this is {fam})")
    recipe = load_recipe_dict(cfg.recipe) if cfg.recipe else None
    results = [read_results(p) for p in cfg.results]
    name = cfg.model_name or model_dir.name
    out = Path(output_dir)
    with atomic_dir(out) as tmp:
        if quantization:
            copy_files(model_dir, tmp, (*COPIED_FILES, QUANT_FILE, quantization["weights"]))  # as stored
        else:
            save_model(model, tmp, tokenizer)  # the transformers format at the top level
        if "mamba_ssm" in formats:
            from biomamba.models.checkpoint import save_mamba2

            save_mamba2(model, tmp / "mamba_ssm", fmt="mamba-ssm", tokenizer=tokenizer)
        gguf_files = _write_gguf(model, tokenizer, cfg, formats, tmp, name)
        _generation_config(cfg, tokenizer).save_pretrained(str(tmp))
        extra = tmp / "biomamba"
        extra.mkdir()
        if cfg.recipe:
            shutil.copy2(cfg.recipe, extra / "recipe.yaml")
        if results:
            (extra / "results").mkdir()
            for path in cfg.results:
                shutil.copy2(path, extra / "results" / Path(path).name)
        card = model_card(cfg, model, fam, tokenizer, recipe, results, name, quantization, gguf_files)
        (tmp / "README.md").write_text(card, encoding="utf-8")
    return out


def _write_gguf(
    model: Any, tokenizer: Any, cfg: ExportConfig, formats: list[str], out: Path, name: str
) -> list[str]:
    """OUT/gguf/NAME-<QUANT>.gguf for each requested type (none unless --format gguf)."""
    if "gguf" not in formats:
        return []
    from biomamba.compress.gguf_export import export_gguf, gguf_name

    (out / "gguf").mkdir()
    files = []
    for quant in dict.fromkeys(cfg.gguf_quant):
        path = export_gguf(model, tokenizer, out / "gguf" / gguf_name(name, quant), quant, name=name)
        files.append(f"gguf/{path.name}")
    return files


def _count_parameters(model: Any) -> int:
    """Parameters of the model as trained: a quantized layer counts its logical in x out weight."""
    from biomamba.models.quantized import QuantLinear

    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    return total + sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, QuantLinear))


def _generation_config(cfg: ExportConfig, tokenizer: Any) -> Any:
    from transformers import GenerationConfig

    sample = cfg.temperature > 0
    kwargs: dict[str, Any] = {"max_new_tokens": cfg.max_new_tokens, "do_sample": sample}
    if sample:
        kwargs.update(temperature=cfg.temperature, top_p=cfg.top_p)
    for key in ("eos_token_id", "bos_token_id", "pad_token_id"):
        value = getattr(tokenizer, key, None)
        if value is not None:
            kwargs[key] = value
    return GenerationConfig(**kwargs)


# ---------------------------------------------------------------------------------------------------------
# The model card


def model_card(
    cfg: ExportConfig,
    model: Any,
    fam: str,
    tokenizer: Any,
    recipe: dict[str, Any] | None,
    results: Sequence[dict[str, Any]],
    name: str,
    quantization: dict[str, Any] | None = None,
    gguf_files: Sequence[str] = (),
) -> str:
    from biomamba import __version__

    params = _count_parameters(model)
    front = {
        "license": cfg.license,
        "language": cfg.language,
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["biomedical", "biomamba", fam],
    }
    if cfg.base_model:
        front["base_model"] = cfg.base_model
    if quantization:  # biomamba's quantized format: transformers alone cannot load it
        del front["library_name"]
        front["tags"].append("quantized")
    parts = [
        "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n",
        f"# {name}\n",
        f"A {fam} causal language model with {params / 1e6:.1f}M parameters adapted to biomedical text with "
        f"biomamba {__version__} (continued pretraining, then evaluation of what the adaptation gained "
        "and cost).\n",
        "## Model\n",
        _model_table(model, fam, tokenizer, params, quantization),
        "## Training\n",
        _training_section(recipe),
        "## Evaluation\n",
        _evaluation_section(results),
        "## Usage\n",
        _usage(fam, quantized=quantization is not None, gguf_files=gguf_files),
        "## Intended use and limitations\n",
        "A research model for biomedical NLP. It can state false medical facts fluently: it must not be used "
        "for diagnosis, treatment or any clinical decision. Run it locally (`biomamba serve` binds to "
        "127.0.0.1) when prompts contain patient data.\n",
    ]
    return "\n".join(parts)


def _model_table(
    model: Any, fam: str, tokenizer: Any, params: int, quantization: dict[str, Any] | None = None
) -> str:
    config = getattr(model, "config", None)
    get = (lambda k: getattr(config, k, None)) if config is not None else (lambda k: None)
    rows = [
        ("family", fam),
        ("parameters", f"{params:,}"),
        ("layers", get("n_layer") or get("num_hidden_layers")),
        ("hidden size", get("d_model") or get("hidden_size") or get("n_embd")),
        ("vocabulary (tokenizer)", len(tokenizer)),
    ]
    rows += [(label, get(attr)) for label, attr in family_named(fam).card_fields]
    if quantization:
        method, group = quantization.get("method"), quantization.get("group_size")
        rows.append(("quantization", f"{method} weight-only, group size {group} (`biomamba quantize`)"))
    return _table(["", ""], [row for row in rows if row[1] is not None])


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A card section's table, ending in a newline."""
    return "\n".join(markdown_table(head, rows)) + "\n"


def _training_section(recipe: dict[str, Any] | None) -> str:
    if recipe is None:
        return "No training recipe was given to `biomamba export`.\n"
    lines = []
    if recipe.get("description"):
        lines.append(str(recipe["description"]).strip() + "\n")
    highlights = []
    for section, keys in {
        "model": ("base", "name", "preset", "init_from"),
        "data": ("sources", "mixture", "tokens", "max_tokens"),
        "train": ("max_steps", "tokens", "lr", "batch_size", "seq_len", "precision", "schedule"),
    }.items():
        block = recipe.get(section) or {}
        for key in keys:
            if key in block:
                value = block[key]
                text = json.dumps(value) if isinstance(value, dict | list) else str(value)
                highlights.append((f"{section}.{key}", text[:200]))
    if highlights:
        lines.append(_table(["setting", "value"], highlights))
    lines.append("The full recipe (`biomamba/recipe.yaml`):\n")
    lines.append("```yaml\n" + yaml.safe_dump(recipe, sort_keys=False).strip() + "\n```\n")
    return "\n".join(lines)


def _fmt_ci(metrics: dict[str, Any], key: str) -> str:
    value = metrics.get(key)
    if value is None:
        return "-"
    ci = metrics.get(f"{key}_ci")
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def _evaluation_section(results: Sequence[dict[str, Any]]) -> str:
    if not results:
        return "No evaluation results were given to `biomamba export`.\n"
    rows, ppl_rows = [], []
    for res in results:
        label = res.get("model", {}).get("name", "model")
        protocol = res.get("protocol", {})
        setting = f"{protocol.get('name', '?')}, {protocol.get('shots', 0)}-shot"
        for task, entry in res.get("tasks", {}).items():
            metrics = entry.get("metrics", {})
            rows.append((task, label, setting, entry.get("n", "-"), _fmt_ci(metrics, "acc")))
        for domain, stats in (res.get("perplexity") or {}).items():
            if isinstance(stats, dict) and "ppl" in stats:
                ppl_rows.append((domain, label, f"{stats['ppl']:.3f}", stats.get("tokens", "-")))
    out = []
    if rows:
        out.append("Accuracy with 95% bootstrap intervals (from the results files in `biomamba/results/`):\n")
        out.append(_table(["task", "model", "protocol", "n", "accuracy"], rows))
    if ppl_rows:
        out.append("Held-out perplexity:\n")
        out.append(_table(["domain", "model", "perplexity", "tokens"], ppl_rows))
    return "\n".join(out) or "The results files hold no task or perplexity entries.\n"


def _usage(fam: str, quantized: bool = False, gguf_files: Sequence[str] = ()) -> str:
    code = [
        "```bash",
        "biomamba generate ./this-directory < prompt.txt   # stdin: the prompt never shows in `ps`",
        "biomamba serve ./this-directory   # OpenAI-compatible API on http://127.0.0.1:8000/v1",
        "```",
    ]
    if quantized or family_named(fam).native:
        loads = "quantized weights: biomamba only" if quantized else "or transformers' Mamba2ForCausalLM"
        code += [
            "```python",
            f"from biomamba.models import load_model, load_tokenizer   # {loads}",
            "model, tokenizer = load_model('./this-directory'), load_tokenizer('./this-directory')",
            "```",
        ]
        if not quantized:
            code.append(
                "`mamba_ssm/` holds the same weights for `mamba_ssm.models.mixer_seq_simple.MambaLMHeadModel`."
            )
    else:
        code += [
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "model = AutoModelForCausalLM.from_pretrained('./this-directory')",
            "tokenizer = AutoTokenizer.from_pretrained('./this-directory')",
            "```",
        ]
    if gguf_files:
        code += [
            "On a laptop or desktop CPU, run a GGUF file (tokenizer included) with llama.cpp, Ollama, LM Studio "
            "or biomamba itself:",
            "```bash",
            f'biomamba generate ./this-directory/{gguf_files[0]} "Metformin is a first-line treatment for"',
            f"llama-cli -m ./this-directory/{gguf_files[0]} -p 'Metformin is'",
            "```",
            "GGUF files: " + ", ".join(f"`{f}`" for f in gguf_files) + ".",
        ]
    return "\n".join(code) + "\n"

"""CLI commands of the compress stage: quantize, merge, ensemble, export (mounted by biomamba.cli.main)."""

from __future__ import annotations

import inspect
from pathlib import Path

import typer
from typer.core import TyperCommand

from biomamba.config.command_line import PRECEDENCE, load_stage_config, set_option

CPU_HINT = (
    "hint: for CPU deployment, PyTorch's weight-only int8/int4 dequantize the weights inside every matmul and "
    "decode slower than fp32 (BENCHMARKS.md); llama.cpp's Q8_0/Q4_K kernels are fast: export a GGUF file with "
    "`biomamba export {model} -o OUT --format gguf --quant q8_0` (or q4_k_m) and run it with "
    "`biomamba generate OUT/gguf/<name>-Q8_0.gguf`, `biomamba serve`, llama.cpp, Ollama or LM Studio"
)


def merge_methods_help() -> str:
    """One paragraph per registered merge method: its base-model rule and its parameters with their defaults,
    read from the registry (compress/merge_methods.py), so a new method's row is its documentation here too."""
    from biomamba.compress.merge_methods import METHODS, REQUIRED

    rows = []
    for method in METHODS.values():
        inputs = "base_model" if method.needs_base else "no base"
        if method.non_base_inputs is not None:
            inputs += f" + {method.non_base_inputs} model{'s' * (method.non_base_inputs != 1)}"
        params = (
            p.name + ("" if p.default is REQUIRED else f"={p.default}") + " (per model)" * p.per_model
            for p in method.params
        )
        rows.append(f"{method.name} ({inputs}): {', '.join(params)}")
    return "Methods and their parameters:\n\n" + "\n\n".join(rows)


class MergeCommand(TyperCommand):
    """`biomamba merge`, whose help ends with `merge_methods_help`, built only when the help is shown: the
    registry imports torch, which the rest of the CLI (`biomamba --help` included) must not pay for."""

    @property
    def help(self) -> str | None:  # type: ignore[override]
        return inspect.cleandoc(self._help or "") + "\n\n" + merge_methods_help()

    @help.setter
    def help(self, value: str | None) -> None:
        self._help = value


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""

    @app.command("quantize", epilog=PRECEDENCE)
    def quantize_cmd(
        model: str = typer.Argument(..., help="Model directory to quantize (any family; Mamba2 included)."),
        method: list[str] = typer.Option(
            None,
            "--method",
            "-m",
            help="int8 | int4 | bnb-int8 | bnb-nf4 | bnb-fp4 [int8]. Repeat for one row per method "
            "against the same reference (each saved under OUTPUT/<method>).",
        ),
        group_size: int = typer.Option(
            None, "--group-size", "-g", help="Weights per scale (power of 2) [128]."
        ),
        output: Path = typer.Option(
            None, "--output", "-o", help="Quantized model dir [runs/<model>-<method>]."
        ),
        backend: str = typer.Option(None, help="auto | torchao | biomamba [auto: torchao where it applies]."),
        device: str = typer.Option(None, help="cpu | cuda [cpu]. bitsandbytes methods need cuda."),
        eval_corpus: Path = typer.Option(None, help="Corpus dir: held-out perplexity before/after."),
        eval_task: list[str] = typer.Option(None, help="NAME=PATH task file for accuracy (repeatable)."),
        recipe: Path = typer.Option(None, "--recipe", "-r", help="Recipe with a `quantize:` section."),
        set_: list[str] = set_option("quantize.group_size=64"),
    ) -> None:
        """Quantize MODEL's weights (weight-only int8/int4), save, reload, and print the comparison table.

        The table (also saved as quantization_report.md/.json in the output) gives file size, weight bytes,
        measured peak memory (CUDA: peak allocation over load + decode; CPU: peak RSS of a fresh process
        that loads the directory and decodes), decode tokens/s and, with --eval-corpus / --eval-task,
        perplexity and accuracy deltas measured by the evaluation stage against the unquantized model.
        """
        from biomamba.compress.config import QuantizeConfig
        from biomamba.compress.quantize import quantize

        flags = {
            "quantize.group_size": group_size,
            "quantize.backend": backend,
            "quantize.device": device,
            "quantize.eval_corpus": eval_corpus,
            "quantize.eval_tasks": eval_task or None,
        }
        methods = list(dict.fromkeys(method or []))
        # each --method is validated like the recipe's `quantize.method` (the flag wins over the recipe)
        configs = [
            load_stage_config(recipe, "quantize", QuantizeConfig, {**flags, "quantize.method": m}, set_)
            for m in methods or [None]
        ]
        cfg, raw = configs[0]
        names = [c.method for c, _ in configs]
        out = output or Path(raw.get("output_dir") or "runs") / f"{Path(model).name}-{'-'.join(names)}"
        quantize(model, cfg, out, methods=names)
        typer.echo((out / "quantization_report.md").read_text(), nl=False)
        where = ", ".join(str(out / n) for n in names) if len(names) > 1 else str(out)
        typer.echo(f"quantized model: {where}", err=True)
        if cfg.device == "cpu":
            typer.echo(CPU_HINT.format(model=model), err=True)

    @app.command(
        "merge", cls=MergeCommand, short_help="Merge checkpoints tensor by tensor (mergekit's methods)."
    )
    def merge_cmd(
        config: Path = typer.Argument(
            ..., help="mergekit-style YAML (merge_method, models/slices, ...) or a recipe."
        ),
        output: Path = typer.Option(
            None, "--output", "-o", help="Merged model dir [merge output_dir or runs/merged]."
        ),
        seed: int = typer.Option(None, help="Seed of DARE's random drops."),
    ) -> None:
        """Merge checkpoints tensor by tensor, with mergekit's methods and YAML layout.

        Works for every family (GPT-2, Llama, Mistral, Mamba2) from safetensors; memory stays near one
        tensor per input model. Configs use mergekit's layout, e.g. BioMistral's SLERP with per-layer `t`
        curves for self_attn (or Mamba2's mixer) and mlp. See recipes/merge-*.yaml and docs/compress.md.
        """
        from biomamba.compress.merge import load_merge_config, merge

        cfg = load_merge_config(config)
        if seed is not None:
            cfg.seed = seed
        out = output or Path(cfg.output_dir or "runs/merged")
        merge(cfg, out)
        typer.echo(f"merged model: {out}", err=True)

    @app.command("ensemble")
    def ensemble_cmd(
        results: list[Path] = typer.Argument(..., help="Two or more results JSON files (biomamba eval run)."),
        output: Path = typer.Option(..., "--output", "-o", help="Results JSON of the ensemble."),
        weight: list[float] = typer.Option(None, help="One weight per results file [all 1]."),
    ) -> None:
        """Ensemble models on their shared multiple-choice tasks: sum of per-choice probabilities.

        Reads the per-choice scores stored in each results file (loglikelihood or letter protocol), so no
        model is run again; writes a results file the report stage renders like any other model.
        """
        from biomamba.compress.ensemble import ensemble_files

        combined = ensemble_files(results, output, weight or None)
        for task, entry in combined["tasks"].items():
            members = ", ".join(f"{k} {v:.3f}" for k, v in entry["metrics"]["member_acc"].items())
            typer.echo(f"{task}: ensemble acc {entry['metrics']['acc']:.3f} ({members})")

    @app.command("export", epilog=PRECEDENCE)
    def export_cmd(
        model: str = typer.Argument(..., help="Trained model directory (e.g. runs/x/final)."),
        output: Path = typer.Option(..., "--output", "-o", help="Release directory to write."),
        recipe: Path = typer.Option(None, "--recipe", "-r", help="Recipe with an `export:` section."),
        training_recipe: Path = typer.Option(None, help="Recipe the model was trained with."),
        results: list[Path] = typer.Option(None, help="Evaluation results JSON (repeatable)."),
        fmt: list[str] = typer.Option(
            None,
            "--format",
            help="transformers | mamba_ssm | gguf (repeatable; gguf adds OUT/gguf/*.gguf); default: "
            "transformers, plus mamba_ssm for an unquantized Mamba2.",
        ),
        quant: list[str] = typer.Option(
            None,
            help="GGUF type with --format gguf: f16 | q8_0 | q4_k_m (repeatable) [q8_0]. q4_k_m is "
            "quantized by llama.cpp (llama-cpp-python).",
        ),
        name: str = typer.Option(None, help="Model name shown in the model card."),
        set_: list[str] = set_option("export.license=mit"),
    ) -> None:
        """Write a release directory: weights (transformers format, and mamba-ssm format for Mamba2),
        tokenizer, generation_config.json and a model card (README.md) filled from the training recipe
        and the evaluation results. --format gguf adds llama.cpp files (GPT-2, Llama, Mistral, Mamba2)
        for fast private inference on CPU: `biomamba generate OUT/gguf/NAME-Q8_0.gguf "..."`."""
        from biomamba.compress.config import ExportConfig
        from biomamba.compress.export import export

        flags = {
            "export.recipe": training_recipe,
            "export.results": results or None,
            "export.formats": fmt or None,
            "export.gguf_quant": quant or None,
            "export.model_name": name,
        }
        cfg, _ = load_stage_config(recipe, "export", ExportConfig, flags, set_)
        out = export(model, cfg, output)
        typer.echo(f"release directory: {out}", err=True)

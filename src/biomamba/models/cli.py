"""CLI commands of the models stage (mounted by biomamba.cli.main): `biomamba models list|info|convert|create`."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from biomamba.config.command_line import PRECEDENCE, command_group, load_stage_config, set_option
from biomamba.errors import CheckpointError, RecipeError

HELP = (
    "Mamba2 presets, model directories and checkpoint formats.\n\n"
    "A model directory is biomamba's native Mamba2 format (= transformers' Mamba2: config.json with "
    "model_type mamba2 + model.safetensors), the mamba-ssm format of state-spaces/mamba2-* and the released "
    "BioMamba checkpoints (config.json with d_model/ssm_cfg + pytorch_model.bin), or any transformers causal "
    "LM (GPT-2, Llama, Mistral). Every other stage accepts all three."
)

# The config.json fields of a transformers model `models info` shows (GPT-2's names, then Llama/Mistral's).
TRANSFORMERS_SHAPE_KEYS = (
    "hidden_size n_embd num_hidden_layers n_layer vocab_size max_position_embeddings n_positions".split()
)


def _info(model_dir: Path) -> list[tuple[str, str]]:
    """Facts about a model directory, read from its config and weight headers (nothing is built)."""
    from biomamba.models.checkpoint import detect_format, has_tokenizer, mamba2_config, read_config
    from biomamba.models.families import family_of_dir
    from biomamba.models.presets import count_parameters, format_count

    fmt = detect_format(model_dir)
    data = read_config(model_dir)
    family = ("family", family_of_dir(model_dir).name)
    headers = _safetensors_headers(model_dir)
    rows: list[tuple[str, str]] = [("directory", str(model_dir))]
    if fmt in ("hf", "mamba-ssm"):
        cfg = mamba2_config(model_dir)
        n = count_parameters(cfg)
        rows += [
            ("format", "Mamba2, transformers format" if fmt == "hf" else "Mamba2, mamba-ssm format"),
            family,
            ("parameters", f"{n:,} ({format_count(n)})"),
            ("d_model / n_layer", f"{cfg.d_model} / {cfg.n_layer}"),
            (
                "d_state / headdim / expand / ngroups",
                f"{cfg.d_state} / {cfg.headdim} / {cfg.expand} / {cfg.ngroups}",
            ),
            ("heads / d_inner", f"{cfg.nheads} / {cfg.d_inner}"),
            ("vocab (padded)", f"{cfg.vocab_size} ({cfg.padded_vocab_size})"),
            ("tied embeddings", str(cfg.tie_embeddings)),
            ("chunk size", str(cfg.chunk_size)),
        ]
    else:
        rows += [("format", "transformers"), family]
        if headers is not None:
            rows.append(("parameters", f"{headers[0]:,} ({format_count(headers[0])})"))
        rows += [(key, str(data[key])) for key in TRANSFORMERS_SHAPE_KEYS if key in data]
    if headers and headers[1]:
        rows.append(("stored dtype", ", ".join(headers[1])))
    rows.append(("tokenizer", "included" if has_tokenizer(model_dir) else "none in the directory"))
    return rows


def _safetensors_headers(model_dir: Path) -> tuple[int, list[str]] | None:
    """(parameter count over every *.safetensors file, the dtypes stored in the first), read from the
    headers only; None for a directory without safetensors files."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None
    total, dtypes = 0, set()
    for file in files:
        with safe_open(str(file), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                total += math.prod(handle.get_slice(key).get_shape())
                if file == files[0]:
                    dtypes.add(handle.get_slice(key).get_dtype())
    return total, sorted(dtypes)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    models_app = command_group(app, "models", HELP)

    @models_app.command("list")
    def list_presets() -> None:
        """The Mamba2 presets (state-spaces/mamba2-130m ... 2.7b) with dimensions and exact parameter counts."""
        from biomamba.models.presets import PUBLISHED, count_parameters, format_count, preset_config

        header = f"{'preset':<7} {'d_model':>7} {'n_layer':>7} {'d_state':>7} {'headdim':>7} {'expand':>6} {'heads':>5} {'vocab':>13} {'parameters':>15} {'published':>9}"
        typer.echo(header)
        for name in [*PUBLISHED, "tiny"]:
            cfg = preset_config(name)
            n = count_parameters(cfg)
            label = PUBLISHED[name][2] if name in PUBLISHED else "-"
            vocab = f"{cfg.vocab_size}->{cfg.padded_vocab_size}"
            typer.echo(
                f"{name:<7} {cfg.d_model:>7} {cfg.n_layer:>7} {cfg.d_state:>7} {cfg.headdim:>7} {cfg.expand:>6} "
                f"{cfg.nheads:>5} {vocab:>13} {n:>15,} {label:>9}  ({format_count(n)})"
            )

    @models_app.command("info")
    def info(model: Path = typer.Argument(..., help="Model directory (any supported format).")) -> None:
        """Describe a model directory: format, family, dimensions, parameters, dtype, tokenizer."""
        if not model.is_dir():
            raise CheckpointError(f"{model}: no such model directory")
        rows = _info(model)
        width = max(len(key) for key, _ in rows)
        for key, value in rows:
            typer.echo(f"{key:<{width}}  {value}")

    @models_app.command("convert")
    def convert(
        src: Path = typer.Argument(..., help="Mamba2 model directory (transformers or mamba-ssm format)."),
        dst: Path = typer.Argument(..., help="Output directory (written atomically; replaced if it exists)."),
        to: str = typer.Option(
            ...,
            help="Target format: hf (transformers Mamba2: model.safetensors) or mamba-ssm (what "
            "state-spaces/mamba2-* holds: mamba-ssm's config fields, pytorch_model.bin).",
        ),
    ) -> None:
        """Convert a Mamba2 checkpoint between the transformers and mamba-ssm formats (weights bit-identical)."""
        from biomamba.models.checkpoint import convert_checkpoint

        if not src.is_dir():
            raise CheckpointError(f"{src}: no such model directory")
        out = convert_checkpoint(src, dst, to=to)
        typer.echo(f"wrote {out} ({to} format)")

    @models_app.command("create", epilog=PRECEDENCE)
    def create(
        recipe: Path = typer.Argument(None, help="Recipe whose `model:` section names a preset (optional)."),
        preset: str = typer.Option(None, help="Mamba2 preset: 130m, 370m, 780m, 1.3b, 2.7b, tiny."),
        vocab_size: int = typer.Option(
            None, help="Vocabulary size (default: the tokenizer's, else the preset's)."
        ),
        tokenizer: Path = typer.Option(None, help="Tokenizer directory to save with the model."),
        seed: int = typer.Option(None, help="Initialisation seed (default: the recipe's seed, else 0)."),
        output_dir: Path = typer.Option(None, help="Where to write (default: runs/<name>/model)."),
        set_: list[str] = set_option("model.n_layer=12"),
    ) -> None:
        """Write a freshly initialised Mamba2 (mamba-ssm's initialisation) as a model directory."""
        from biomamba.models.config import ModelConfig
        from biomamba.models.loading import load_tokenizer, save_model

        flags = {"model.preset": preset, "model.vocab_size": vocab_size, "model.seed": seed}
        config, raw = load_stage_config(recipe, "model", ModelConfig, flags, set_)
        if config.preset is None:
            raise RecipeError(
                str(recipe or "flags"), "model.preset", "required: which preset to build (e.g. --preset 130m)"
            )
        tok = load_tokenizer(tokenizer) if tokenizer is not None else None
        model = config.build(seed=raw.get("seed"), vocab_size=len(tok) if tok is not None else None)
        out = output_dir or Path("runs") / str(raw.get("name") or f"mamba2-{config.preset}") / "model"
        save_model(model, out, tokenizer=tok)
        typer.echo(f"wrote {out} ({model.num_parameters():,} parameters)")

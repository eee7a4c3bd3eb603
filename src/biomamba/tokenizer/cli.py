"""CLI commands of the tokenizer stage (mounted by biomamba.cli.main): `biomamba tokenizer train|fertility`."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import typer

from biomamba.config import load_section, load_stage_config
from biomamba.config.command_line import PRECEDENCE, command_group, parse_named_values, set_option
from biomamba.errors import BiomambaError

HELP = "Train a byte-level BPE tokenizer; compare tokenizers' fertility."


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    tok_app = command_group(app, "tokenizer", HELP)

    @tok_app.command("train", epilog=PRECEDENCE)
    def train(
        recipe: Path = typer.Argument(
            None, help="Recipe: trains on its data sources' TRAIN split (held-out excluded)."
        ),
        inputs: list[Path] = typer.Option(
            None, "--input", help="Text or JSON-lines files instead of/besides the recipe."
        ),
        vocab_size: int = typer.Option(None, help="Vocabulary size (BioMedLM used 28,896)."),
        min_frequency: int = typer.Option(None, help="Minimum pair frequency for a merge."),
        max_documents: int = typer.Option(None, help="Stop reading after this many documents."),
        output_dir: Path = typer.Option(
            None,
            help="Where to save (default: tokenizer.output_dir, else <output_dir>/tokenizer, else runs/<name>/tokenizer).",
        ),
        set_: list[str] = set_option("tokenizer.vocab_size=16000"),
    ) -> None:
        """Train a byte-level BPE and save it in the transformers format (AutoTokenizer.from_pretrained loads it)."""
        from biomamba.data.config import stage_output_dir
        from biomamba.tokenizer.config import TokenizerConfig
        from biomamba.tokenizer.train import train_tokenizer

        flags = {"tokenizer.vocab_size": vocab_size, "tokenizer.min_frequency": min_frequency,
                 "tokenizer.max_documents": max_documents}  # fmt: skip
        config, raw = load_stage_config(recipe, "tokenizer", TokenizerConfig, flags, set_)
        texts = None
        if recipe is not None and raw.get("data"):
            from biomamba.data.config import DataConfig
            from biomamba.data.pipeline import iter_documents

            data = load_section(raw, "data", DataConfig, str(recipe))
            texts = (text for _, text in iter_documents(data, "train"))
        if texts is None and not inputs:
            raise BiomambaError("nothing to train on: give a recipe with a data section or --input FILE")
        name = raw.get("name", recipe.stem if recipe else "tokenizer")
        out = output_dir or stage_output_dir(raw, config.output_dir, "tokenizer", name)
        tok = train_tokenizer(texts, config.vocab_size, out, files=inputs, min_frequency=config.min_frequency,
                              max_documents=config.max_documents, special_tokens=config.special_tokens,
                              eos_token=config.eos_token, pad_token=config.pad_token)  # fmt: skip
        typer.echo(f"saved tokenizer ({len(tok)} tokens) to {out}")

    @tok_app.command("fertility")
    def fertility(
        tokenizers: list[str] = typer.Option(..., "--tokenizer", help="NAME=PATH or hub name (repeatable)."),
        recipe: Path = typer.Option(
            None, help="Recipe: measure on its data sources' HELD-OUT documents per domain."
        ),
        texts: list[str] = typer.Option(
            None, "--text", help="DOMAIN=FILE (text lines or JSON lines), repeatable."
        ),
        max_documents: int = typer.Option(200, help="Documents per domain."),
        output: Path = typer.Option(None, help="Write the markdown table here (also printed)."),
    ) -> None:
        """Tokens per word on biomedical vs general held-out text, and how common biomedical terms split."""
        from biomamba.tokenizer.fertility import fertility_report
        from biomamba.tokenizer.train import _file_texts
        from biomamba.utils.atomic import write_text

        by_domain: dict[str, list[str]] = {}
        if recipe is not None:
            from biomamba.data.config import DataConfig
            from biomamba.data.pipeline import iter_documents

            data, _ = load_stage_config(recipe, "data", DataConfig, {}, None)
            for domain in data.sources:
                by_domain[domain] = [t for _, t in iter_documents(data, "heldout", [domain], max_documents)]
        for domain, path in parse_named_values(texts, "--text", bare_name=str).items():
            by_domain[domain] = list(islice(_file_texts(path, "text"), max_documents))
        by_domain = {d: t for d, t in by_domain.items() if t}
        if not by_domain:
            raise BiomambaError(
                "no text to measure: give --recipe (with held-out documents) or --text DOMAIN=FILE"
            )
        report = fertility_report(parse_named_values(tokenizers, "--tokenizer", bare_name=str), by_domain)
        markdown = report.markdown()
        typer.echo(markdown)
        if output:
            write_text(output, markdown)

"""CLI commands of the serve stage: `biomamba generate` and `biomamba serve` (mounted by biomamba.cli.main)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from biomamba.config.command_line import PRECEDENCE, load_stage_config, set_option
from biomamba.errors import BiomambaError

MODEL_HELP = "Model directory (any biomamba family), hub name, or .gguf file (llama.cpp)."


def _open(model: str, dtype: str | None, device: str):  # noqa: ANN202 - (model, tokenizer, BatchDecoder)
    """A GGUF file through llama.cpp (its tokenizer is the one inside it), anything else through load_model."""
    from biomamba.models import load_model, load_tokenizer
    from biomamba.models.decoding import BatchDecoder
    from biomamba.models.gguf import is_gguf, open_gguf

    if is_gguf(model):
        return open_gguf(model)
    tokenizer = load_tokenizer(model)
    loaded = load_model(model, dtype=dtype, device=device)
    return loaded, tokenizer, BatchDecoder(loaded, vocab_size=len(tokenizer))


def register(app: typer.Typer) -> None:
    """Add `generate` and `serve` to the root app."""

    @app.command("generate")
    def generate_cmd(
        model: str = typer.Argument(..., help=MODEL_HELP),
        prompt: str = typer.Argument(None, help="Prompt text; read from stdin when omitted or '-'."),
        max_new_tokens: int = typer.Option(128, "--max-new-tokens", "-n", min=1, help="Tokens to generate."),
        temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy; higher = more random."),
        top_p: float = typer.Option(
            1.0, min=0.0, max=1.0, help="Nucleus sampling mass (with temperature > 0)."
        ),
        seed: int = typer.Option(0, help="Sampling seed, -2**63 to 2**64-1 (same seed, same text)."),
        stop: list[str] = typer.Option(None, help="Stop before this text (repeatable)."),
        device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
        dtype: str = typer.Option(None, help="float32 / bfloat16 / float16 (default: as stored)."),
    ) -> None:
        """Continue PROMPT with MODEL, streaming the text to stdout as it is generated.

        Runs entirely on this machine. Example: echo "Metformin is" | biomamba generate runs/demo/final
        """
        from biomamba.models.decoding import check_seed
        from biomamba.serve.engine import generate_text
        from biomamba.serve.server import check_context, context_limit

        try:
            check_seed(seed)  # before loading anything, and so the decoder never meets a seed torch refuses
        except ValueError as exc:
            raise BiomambaError(f"--seed: {exc}") from None
        text = sys.stdin.read() if prompt in (None, "-") else prompt
        if not text.strip():
            raise BiomambaError("empty prompt: pass PROMPT or pipe text on stdin")
        loaded, tokenizer, decoder = _open(model, dtype, device)
        n_prompt = len(tokenizer(text, add_special_tokens=False)["input_ids"]) or 1  # as generate_text
        check_context(context_limit(loaded), n_prompt, max_new_tokens)  # ContextLengthError: one line
        for piece in generate_text(
            decoder,
            tokenizer,
            text,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=stop or (),
        ):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")

    @app.command("serve", epilog=PRECEDENCE)
    def serve_cmd(
        model: str = typer.Argument(..., help=MODEL_HELP),
        recipe: Path = typer.Option(
            None, "--recipe", "-r", help="Recipe whose `serve:` section sets defaults."
        ),
        host: str = typer.Option(None, help="Interface to bind [default: 127.0.0.1, this machine only]."),
        port: int = typer.Option(None, help="TCP port [default: 8000]."),
        device: str = typer.Option(None, help="cpu, cuda, ... [default: cpu]."),
        dtype: str = typer.Option(None, help="float32 / bfloat16 / float16 [default: as stored]."),
        max_batch_size: int = typer.Option(None, help="Concurrent requests decoded together [default: 8]."),
        max_new_tokens: int = typer.Option(None, help="Largest max_tokens a request may ask for [1024]."),
        max_prompt_tokens: int = typer.Option(None, help="Longest prompt accepted [4096]."),
        log_requests: bool = typer.Option(None, help="Log prompt text too."),
        set_: list[str] = set_option("serve.max_queue=16"),
    ) -> None:
        """Serve MODEL over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions).

        Binds to 127.0.0.1 by default, so patient text never leaves this machine; request text is not
        logged unless --log-requests. Try: curl localhost:8000/v1/completions -H 'Content-Type:
        application/json' -d '{"prompt": "Aspirin is", "max_tokens": 20}'
        """
        from biomamba.serve.config import ServeConfig
        from biomamba.serve.server import make_engine, make_server

        flags = {
            "serve.host": host,
            "serve.port": port,
            "serve.device": device,
            "serve.dtype": dtype,
            "serve.max_batch_size": max_batch_size,
            "serve.max_new_tokens": max_new_tokens,
            "serve.max_prompt_tokens": max_prompt_tokens,
            "serve.log_requests": log_requests,
        }
        cfg, _ = load_stage_config(recipe, "serve", ServeConfig, flags, set_)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        loaded, tokenizer, decoder = _open(model, cfg.dtype, cfg.device)
        name = cfg.model_name or Path(model).name
        try:
            server, engine = make_server(
                loaded, tokenizer, cfg, name, make_engine(loaded, tokenizer, cfg, decoder)
            )
        except OSError as exc:
            raise BiomambaError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}") from None
        host_, port_ = server.server_address[:2]
        typer.echo(f"serving {name} on http://{host_}:{port_}/v1 (Ctrl-C to stop)", err=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
            engine.close()

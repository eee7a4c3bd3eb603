"""Run a GGUF file (from `biomamba export --format gguf`) through llama.cpp, for `biomamba generate/serve`.

Here, in the models stage, because GGUF is one of the on-disk model formats and every stage that runs one
(serve, and the quantization table's measurements in compress) reads it the same way. It is opened with
`open_gguf`, not `load_model`: llama.cpp runs it, so there is no torch module to return.

Why: llama.cpp's Q8_0/Q4_K CPU kernels decode faster than PyTorch fp32, while biomamba's own int8/int4
decode slower on CPU (BENCHMARKS.md). llama-cpp-python gives llama.cpp's forward pass; everything around it
stays biomamba's: the sampler (`sample_next`: same temperature/top-p/seed semantics as the PyTorch path), the
request/stream objects and the HTTP server. The tokenizer is the one inside the GGUF file, so a single file
is all a hospital desktop needs.

Pieces (the interface an engine needs from a backend):
- `GgufModel`: `prefill(ids) -> logits`, `step(token) -> logits`, `logits(ids)` (all positions, for tests);
- `GgufTokenizer`: the subset of a transformers tokenizer that generate/serve use;
- `GgufDecoder`: a `biomamba.models.decoding.BatchDecoder` whose decoding state (`GgufState`) is one llama.cpp
  sequence, so the engine admits one request at a time (llama-cpp-python's `Llama` holds one sequence).
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from biomamba.errors import BiomambaError
from biomamba.models.decoding import BatchDecoder

DEFAULT_MAX_CONTEXT = 4096


def is_gguf(path: str | Path) -> bool:
    """A GGUF file (by its magic bytes), as opposed to a model directory or hub name."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == b"GGUF"
    except OSError:
        return False


_QUIET: list[Any] = []  # llama.cpp's log callback, kept alive for as long as the library may call it


def _llama_cpp() -> Any:
    """llama-cpp-python, with llama.cpp's own log lines silenced (generate prints only the text)."""
    try:
        import llama_cpp
    except ImportError:
        raise BiomambaError(
            "running a GGUF file needs llama-cpp-python: pip install 'biomamba[gguf]'"
        ) from None
    if not _QUIET:
        _QUIET.append(llama_cpp.llama_log_callback(lambda level, text, user_data: None))
        llama_cpp.llama_log_set(_QUIET[0], None)
    return llama_cpp


def _architecture_and_context(path: Path) -> tuple[str, int]:
    """`general.architecture` and its trained context length, read from the header (no weights loaded)."""
    from gguf import GGUFReader

    try:
        fields = GGUFReader(str(path)).fields
        arch = str(fields["general.architecture"].contents())
    except (ValueError, KeyError, IndexError, OSError) as exc:
        raise BiomambaError(f"{path}: not a readable GGUF file ({exc})") from None
    context = fields.get(f"{arch}.context_length")
    return arch, int(context.contents()) if context is not None else DEFAULT_MAX_CONTEXT


@contextlib.contextmanager
def _model_params(llama_cpp: Any, **fields: Any) -> Iterator[None]:
    """Set llama_model_params fields that `llama_cpp.Llama` does not expose, while a model is opened."""
    module = llama_cpp.llama_cpp
    default = module.llama_model_default_params

    def patched() -> Any:
        params = default()
        for key, value in fields.items():
            setattr(params, key, value)
        return params

    module.llama_model_default_params = patched
    try:
        yield
    finally:
        module.llama_model_default_params = default


class GgufModel:
    """llama.cpp's forward pass over a GGUF file; logits come back as float32 numpy arrays."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        logits_all: bool = False,
        extra_buffers: bool = False,
    ) -> None:
        """`extra_buffers`: llama.cpp's repacked/AMX CPU weight buffers. Off by default: with them,
        llama-cpp-python 0.3.36 crashes (SIGSEGV) on any Q8_0 prompt of 2+ tokens on an AVX-512/AMX Xeon
        (tests/compress/test_gguf.py found it); without them llama.cpp uses its plain CPU kernels."""
        llama_cpp = _llama_cpp()
        self.path = Path(path)
        if not is_gguf(self.path):
            raise BiomambaError(f"{self.path}: not a GGUF file")
        arch, trained = _architecture_and_context(self.path)
        try:
            with _model_params(llama_cpp, use_extra_bufts=extra_buffers):
                self.llm = llama_cpp.Llama(
                    str(self.path),
                    n_ctx=n_ctx or min(trained, DEFAULT_MAX_CONTEXT),
                    n_batch=512,
                    n_threads=n_threads or os.cpu_count(),
                    logits_all=logits_all,
                    verbose=False,
                )
        except ValueError as exc:
            raise BiomambaError(f"{self.path}: llama.cpp cannot load it ({exc})") from None
        self.architecture = arch
        self._llama_cpp = llama_cpp
        # freed before interpreter shutdown (llama-cpp-python's __del__ fails once its module is torn down)
        weakref.finalize(self, self.llm.close)
        # `serve.server.context_limit` reads config.n_ctx: the positions llama.cpp allocated (it may round
        # up), but never beyond the trained context
        self.config = SimpleNamespace(n_ctx=min(self.llm.n_ctx(), trained))

    def prefill(self, ids: Sequence[int]) -> np.ndarray:
        """Start a new sequence from `ids`; the next-token logits [V]."""
        self.llm.reset()
        self.llm.eval(list(ids))
        return self._last_logits()

    def step(self, token: int) -> np.ndarray:
        """Append one token to the sequence; the next-token logits [V]."""
        self.llm.eval([int(token)])
        return self._last_logits()

    def _last_logits(self) -> np.ndarray:
        """The last position's logits, read from the context (llama-cpp-python keeps its `scores` only
        with logits_all)."""
        pointer = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.llm.n_vocab(),)).astype(np.float32)

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """Logits at every position [T, V] (open with logits_all=True), as `model(input_ids).logits[0]`."""
        self.prefill(ids)
        return np.array(self.llm.scores[: self.llm.n_tokens], dtype=np.float32)

    def close(self) -> None:
        self.llm.close()


class GgufTokenizer:
    """The tokenizer stored in the GGUF file, with the transformers methods generate/serve call."""

    def __init__(self, model: GgufModel) -> None:
        self.llm = model.llm
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        self.eos_token_id = eos if eos >= 0 else None
        self.bos_token_id = bos if bos >= 0 else None
        self.chat_template = self.llm.metadata.get("tokenizer.chat_template")
        self._adds_bos = self.llm.metadata.get("tokenizer.ggml.add_bos_token") == "true"
        self._size = _real_vocab_size(self.llm)

    def __len__(self) -> int:
        """Tokens that are not padding ([PAD<i>] rows of a padded embedding are never sampled)."""
        return self._size

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        ids = self.llm.tokenize(
            text.encode("utf-8"), add_bos=add_special_tokens and self._adds_bos, special=True
        )
        return {"input_ids": list(ids)}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        data = self.llm.detokenize(list(ids), special=not skip_special_tokens)
        return data.decode("utf-8", errors="replace")

    def apply_chat_template(
        self,
        messages: list[dict[str, str]],
        chat_template: str | None = None,
        tokenize: bool = False,
        add_generation_prompt: bool = True,
    ) -> str:
        """Render the template with jinja2, the engine transformers uses for chat templates."""
        import jinja2

        template = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(
            chat_template or self.chat_template or ""
        )
        special = {"bos_token": self._piece(self.bos_token_id), "eos_token": self._piece(self.eos_token_id)}
        text = template.render(messages=messages, add_generation_prompt=add_generation_prompt, **special)
        return self(text, add_special_tokens=False)["input_ids"] if tokenize else text

    def _piece(self, token: int | None) -> str:
        return "" if token is None else self.decode([token])


def _real_vocab_size(llm: Any) -> int:
    """One past the last token that is not an UNUSED padding entry."""
    llama_cpp = _llama_cpp()
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n = llm.n_vocab()
    while n > 0 and llama_cpp.llama_vocab_get_attr(vocab, n - 1) & llama_cpp.LLAMA_TOKEN_ATTR_UNUSED:
        n -= 1
    return n


class GgufState:
    """A `models.decode_state.DecodeState` over llama.cpp: one sequence (llama-cpp-python's `Llama` holds one
    KV cache), so the decoder lets one request in at a time (`GgufDecoder.max_rows`)."""

    def __init__(self, model: GgufModel) -> None:
        self.model = model
        self.batch_size = 0

    def join(self, prompts: Sequence[Sequence[int]]) -> Any:
        if self.batch_size or len(prompts) != 1:
            raise RuntimeError("a llama.cpp sequence decodes one request at a time")
        logits = self.model.prefill(prompts[0])
        self.batch_size = 1
        return torch.from_numpy(logits)[None]

    def step(self, tokens: Any) -> Any:
        return torch.from_numpy(self.model.step(int(tokens[0])))[None]

    def keep(self, rows: Sequence[int]) -> None:
        self.batch_size = len(rows)  # [] ends the sequence; the next join resets llama.cpp's cache

    def can_join(self, prompt_lengths: Sequence[int]) -> bool:
        return self.batch_size == 0


class GgufDecoder(BatchDecoder):
    """`models.decoding.BatchDecoder` over llama.cpp: the same batches, rows, sampling and fault handling as the
    PyTorch path (so seeds, stop tokens and cancellation behave alike), one request at a time."""

    max_rows = 1

    def __init__(self, model: GgufModel, vocab_size: int | None = None) -> None:
        self.model = model
        self.device = torch.device("cpu")
        self.vocab_size = vocab_size

    def new_state(self) -> GgufState:
        return GgufState(self.model)


def open_gguf(path: str | Path, *, n_ctx: int | None = None) -> tuple[GgufModel, GgufTokenizer, GgufDecoder]:
    """What `biomamba generate/serve` need to run a GGUF file: model, tokenizer, decoder."""
    model = GgufModel(path, n_ctx=n_ctx)
    tokenizer = GgufTokenizer(model)
    return model, tokenizer, GgufDecoder(model, vocab_size=len(tokenizer))

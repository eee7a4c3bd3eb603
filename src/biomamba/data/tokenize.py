"""The tokenizer as the corpus stage needs it: a fast `tokenizers.Tokenizer` that can be shipped to workers.

The build accepts a tokenizer directory, a transformers tokenizer or a raw `tokenizers.Tokenizer`, and turns
it into the serialized Rust tokenizer (a JSON string), which every worker process rebuilds in milliseconds.
Its sha256 goes into the manifest so that a corpus is never silently paired with another vocabulary.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biomamba.errors import DataError
from biomamba.utils.digest import file_sha256

EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "[SEP]")


@dataclass(frozen=True)
class TokenizerSpec:
    """Everything a worker needs to tokenize: the serialized tokenizer, EOS id, vocabulary size."""

    json: str
    eos_token_id: int
    vocab_size: int
    path: str | None
    file_sha256: str | None = None  # of tokenizer.json on disk, when loaded from a directory

    @property
    def sha256(self) -> str:
        """sha256 of `tokenizer.json` as saved (docs/formats.md), else of the serialized tokenizer."""
        return self.file_sha256 or hashlib.sha256(self.json.encode("utf-8")).hexdigest()

    def build(self) -> Any:
        from tokenizers import Tokenizer

        return Tokenizer.from_str(self.json)


def tokenizer_spec(tokenizer: Any, eos_token_id: int | None = None) -> TokenizerSpec:
    """Accept a path/hub name, a transformers fast tokenizer or a `tokenizers.Tokenizer`."""
    path: str | None = None
    if isinstance(tokenizer, str | Path):
        path = str(tokenizer)
        tokenizer = _load(path)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None and hasattr(tokenizer, "to_str"):
        backend = tokenizer
    if backend is None:
        raise DataError(f"tokenizer {path or type(tokenizer).__name__}: a fast (Rust) tokenizer is required")
    if eos_token_id is None:
        eos_token_id = getattr(tokenizer, "eos_token_id", None)
    if eos_token_id is None:  # the first of the usual EOS spellings the vocabulary has
        found = (backend.token_to_id(token) for token in EOS_CANDIDATES)
        eos_token_id = next((token_id for token_id in found if token_id is not None), None)
    if eos_token_id is None:
        raise DataError(f"tokenizer {path or ''}: no EOS token (documents must end with one); set eos_token")
    vocab_size = backend.get_vocab_size(with_added_tokens=True)
    if hasattr(tokenizer, "__len__"):
        vocab_size = max(vocab_size, len(tokenizer))
    path = path or getattr(tokenizer, "name_or_path", None)
    saved = Path(path) / "tokenizer.json" if path else None
    file_sha = file_sha256(saved) if saved is not None and saved.is_file() else None
    return TokenizerSpec(backend.to_str(), int(eos_token_id), int(vocab_size), path, file_sha)


def _load(name_or_path: str) -> Any:
    folder = Path(name_or_path)
    if not (folder / "tokenizer.json").is_file():
        return hub_tokenizer(name_or_path)
    try:
        return _LocalTokenizer(folder)
    except Exception as exc:  # noqa: BLE001 - corrupt JSON, unknown model type: one line for the user
        raise DataError(
            f"tokenizer {folder}: cannot load tokenizer.json ({type(exc).__name__}: {exc})"
        ) from None


def hub_tokenizer(name_or_path: str) -> Any:
    """`AutoTokenizer.from_pretrained`, any failure one DataError line (the corpus build, fertility report)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, hub errors: one line for the user
        raise DataError(f"tokenizer {name_or_path}: cannot load ({type(exc).__name__}: {exc})") from None


class _LocalTokenizer:
    """A saved transformers tokenizer read with `tokenizers` alone: importing transformers costs seconds, and a
    corpus build needs only the Rust tokenizer and the EOS token named in tokenizer_config.json."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.backend_tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.name_or_path = str(folder)
        self.eos_token_id = None
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            config_path = folder / name
            if config_path.is_file():
                eos = json.loads(config_path.read_text(encoding="utf-8")).get("eos_token")
                eos = eos.get("content") if isinstance(eos, dict) else eos
                if isinstance(eos, str):
                    self.eos_token_id = self.backend_tokenizer.token_to_id(eos)
                    break

"""Train a byte-level BPE tokenizer and save it in the transformers format.

Byte-level BPE (GPT-2, BioMedLM, Mamba's GPT-NeoX tokenizer) never produces an unknown token: any UTF-8 text
is representable, which matters for biomedical text full of Greek letters, units and chemical names. Training
runs in the Rust `tokenizers` library from an iterator, so a corpus far larger than RAM streams through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from pathlib import Path
from typing import Any

from biomamba.errors import DataError
from biomamba.utils.atomic import atomic_dir


def build_bpe(
    texts: Iterable[str],
    vocab_size: int,
    *,
    min_frequency: int = 2,
    special_tokens: tuple[str, ...] | list[str] = ("<|endoftext|>", "<|pad|>"),
) -> Any:
    """Train and return a `tokenizers.Tokenizer` (byte-level BPE, no prefix space, like GPT-2)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    stream = iter(texts)
    first = next(stream, None)  # asked before training: an empty input must not pass for a tokenizer
    if first is None:
        raise DataError("tokenizer training: no training text (empty input)")
    tokenizer.train_from_iterator(chain([first], stream), trainer=trainer)
    return tokenizer


def train_tokenizer(
    texts: Iterable[str] | None = None,
    vocab_size: int = 32_000,
    output_dir: str | Path | None = None,
    *,
    files: Iterable[str | Path] | None = None,
    text_field: str = "text",
    min_frequency: int = 2,
    max_documents: int | None = None,
    special_tokens: tuple[str, ...] | list[str] = ("<|endoftext|>", "<|pad|>"),
    eos_token: str = "<|endoftext|>",
    pad_token: str | None = "<|pad|>",
) -> Any:
    """Train a byte-level BPE on `texts` and/or `files`; save to `output_dir` (atomically) when given.

    `files` may be plain text (one document per non-empty line) or JSON lines (`.jsonl`, `.json.gz`, ...) with
    `text_field`. Returns a `transformers.PreTrainedTokenizerFast` with EOS/BOS/PAD set, so
    `AutoTokenizer.from_pretrained(output_dir)` gives the same tokenizer back.
    """
    from transformers import PreTrainedTokenizerFast

    stream = _texts(texts, files, text_field)
    if max_documents is not None:
        stream = islice(stream, max_documents)
    backend = build_bpe(stream, vocab_size, min_frequency=min_frequency, special_tokens=special_tokens)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=eos_token,
        bos_token=eos_token,
        unk_token=None,
        pad_token=pad_token,
    )
    if output_dir is not None:
        with atomic_dir(output_dir) as tmp:
            save_tokenizer(wrapped, tmp)
        wrapped.name_or_path = str(output_dir)
    return wrapped


PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"
FIVE_ONLY_CLASSES = {"TokenizersBackend"}


def save_tokenizer(tokenizer: Any, folder: str | Path) -> None:
    """`tokenizer.save_pretrained(folder)`, loadable by every transformers version pyproject allows.

    Every stage that writes a tokenizer into a model/checkpoint directory should save it through here.
    """
    tokenizer.save_pretrained(str(folder))
    if (Path(folder) / "tokenizer_config.json").is_file():
        _portable_tokenizer_class(Path(folder))


def _portable_tokenizer_class(folder: Path) -> None:
    """Name a tokenizer class that every transformers version pyproject allows can load.

    transformers 5 saves `"tokenizer_class": "TokenizersBackend"`, a class 4.x does not have
    (`AutoTokenizer` then fails with "Tokenizer class TokenizersBackend does not exist"); the tokenizer is a
    plain `tokenizer.json` either way, and `PreTrainedTokenizerFast` loads it in 4.x and 5.x alike.
    """
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") not in FIVE_ONLY_CLASSES:  # e.g. GPT2Tokenizer, LlamaTokenizer: keep
        return
    config["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _texts(texts: Iterable[str] | None, files: Iterable[str | Path] | None, text_field: str) -> Iterator[str]:
    if texts is not None:
        yield from texts
    for file in files or ():
        yield from _file_texts(str(file), text_field)


def _file_texts(path: str, text_field: str) -> Iterator[str]:
    from biomamba.data.readers import iter_text_documents
    from biomamba.data.readers.jsonl import SUFFIXES

    if not Path(path).is_file():
        raise DataError(f"{path}: tokenizer training file not found")
    if path.lower().endswith(SUFFIXES):
        yield from (doc.text for doc in iter_text_documents(path, "jsonl", text_field=text_field))
        return
    with open(path, encoding="utf-8", errors="strict") as handle:
        try:
            for line in handle:
                if line.strip():
                    yield line.rstrip("\n")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: invalid UTF-8 ({exc.reason} at byte {exc.start})") from None

"""Tiny tokenizers trained in-process in well under a second (never downloaded)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

# Short clinical sentences: enough merges for a 300-token vocabulary, and the in-distribution text the
# compress and serve tests' models are trained or prompted on.
CLINICAL_TEXT = [
    "the patient was given aspirin for chest pain",
    "metformin lowers blood glucose in type 2 diabetes",
    "the mitochondria is the powerhouse of the cell",
    "randomized controlled trials reduce bias in medicine",
] * 8


def bpe_tokenizer(
    texts: Iterable[str] = CLINICAL_TEXT,
    vocab_size: int = 300,
    *,
    specials: Sequence[str] = ("<eos>",),
    pad: str | None = "<eos>",
    min_frequency: int = 0,
    output_dir: Path | None = None,
):
    """A byte-level BPE trained by biomamba's tokenizer stage (what every biomamba tokenizer directory holds),
    the first special token serving as EOS and BOS; saved to `output_dir` when given."""
    from biomamba.tokenizer import train_tokenizer

    return train_tokenizer(
        list(texts),
        vocab_size=vocab_size,
        output_dir=output_dir,
        min_frequency=min_frequency,
        special_tokens=list(specials),
        eos_token=specials[0],
        pad_token=pad,
    )


def metaspace_tokenizer(texts: Iterable[str], vocab_size: int):
    """A BPE over Metaspace pre-tokens (not byte-level, so decoded text keeps its spaces the SentencePiece
    way), wrapped for transformers as a hub tokenizer would be: `<eos>`, `<pad>`, `<unk>`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>", "<pad>", "<unk>"])
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )

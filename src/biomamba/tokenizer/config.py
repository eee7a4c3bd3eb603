"""Recipe schema of the `tokenizer:` section (registered as `biomamba.tokenizer.config:TokenizerConfig`).

tokenizer:
  name_or_path: runs/bio/tokenizer   # the tokenizer the corpus is built with (trained or downloaded)
  vocab_size: 28896                  # BioMedLM's size; when training a new byte-level BPE
  min_frequency: 2
  max_documents: 2000000             # training documents read from the data sources (train split only)
  compare: [gpt2, runs/bio/tokenizer]  # tokenizers in the fertility report
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from biomamba.config.recipe import Section


class TokenizerConfig(Section):
    """Which tokenizer the corpus uses, and how to train a new one."""

    name_or_path: str | None = Field(
        None, description="Tokenizer directory or hub name used by `data build`."
    )
    vocab_size: int = Field(
        32_000, ge=260, le=1 << 20, description="Must exceed the 256 byte symbols + specials."
    )
    min_frequency: int = Field(2, ge=1)
    max_documents: int | None = Field(None, gt=0)
    special_tokens: list[str] = Field(default_factory=lambda: ["<|endoftext|>", "<|pad|>"])
    eos_token: str = "<|endoftext|>"
    pad_token: str | None = "<|pad|>"
    compare: list[str] = Field(
        default_factory=list, description="Tokenizers compared in the fertility report."
    )
    output_dir: str | None = None

    @field_validator("special_tokens")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("special_tokens must be unique")
        return value

    @model_validator(mode="after")
    def _eos_is_special(self) -> TokenizerConfig:
        for token in (self.eos_token, self.pad_token):
            if token is not None and token not in self.special_tokens:
                raise ValueError(f"'{token}' (eos_token/pad_token) must be listed in special_tokens")
        return self

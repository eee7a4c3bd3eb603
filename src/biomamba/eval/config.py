"""Recipe schema of the `eval` section (registered as `biomamba.eval.config:EvalConfig`).

Example:

    eval:
      model: runs/pubmed-mamba2/final
      tasks: [pubmedqa_test, medqa_4options, arc_easy]
      task_files:
        pubmedqa_test: ../shared/data/pubmedqa
        medqa_4options: data/medqa/test.jsonl
        medqa_4options@fr: data/medqa/test.fr.jsonl
      protocol: letter        # loglikelihood | letter | generate
      shots: 3
      seeds: 3
      perplexity: {corpus: runs/corpus, seq_len: 1024}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from biomamba.config.recipe import Section


class PerplexityConfig(Section):
    """Held-out perplexity per domain."""

    corpus: str | None = Field(None, description="corpus dir with heldout/<domain> shards")
    texts: dict[str, str] = Field(default_factory=dict, description="domain -> plain-text file")
    domains: list[str] | None = Field(None, description="held-out domains to evaluate (default: all)")
    seq_len: int = Field(1024, ge=2, description="window length in tokens")
    stride: int | None = Field(None, ge=1, description="sliding-window stride (default: seq_len, no overlap)")
    batch_size: int = Field(8, ge=1)
    max_tokens: int | None = Field(None, ge=2, description="cap on tokens read per domain")

    @model_validator(mode="after")
    def _stride_fits(self) -> PerplexityConfig:
        if self.stride is not None and self.stride > self.seq_len:
            raise ValueError(
                f"stride ({self.stride}) cannot exceed seq_len ({self.seq_len}): tokens would be skipped"
            )
        return self


class EvalConfig(Section):
    """Which model, which benchmarks (local files in their original formats) and how to score them."""

    model: str | None = Field(None, description="model directory or hub name")
    tasks: list[str] = Field(default_factory=list, description="task names (biomamba eval tasks lists them)")
    task_files: dict[str, str] = Field(default_factory=dict, description="NAME or NAME@LANG -> file path")
    fewshot_files: dict[str, str] = Field(default_factory=dict, description="NAME -> file to draw shots from")
    protocol: Literal["loglikelihood", "letter", "generate"] = "loglikelihood"
    shots: int | None = Field(None, ge=0, description="k-shot (default 0 for loglikelihood, 3 for letter)")
    seeds: int = Field(3, ge=1, description="shot draws per task when shots > 0")
    seed: int = 0
    batch_size: int = Field(16, ge=1, description="questions per forward")
    limit: int | None = Field(
        None, ge=1, description="N questions per task: a sample stratified by label, drawn with `seed`"
    )
    max_length: int | None = Field(None, ge=8, description="context length (default: the model's)")
    max_new_tokens: int = Field(16, ge=1, description="generation protocol budget")
    bootstrap_resamples: int = Field(1000, ge=100)
    ece_bins: int = Field(10, ge=2)
    backend: Literal["auto", "kv", "mamba2", "full"] = "auto"
    device: str = "cpu"
    dtype: str | None = None
    output: str | None = Field(None, description="results JSON path")
    perplexity: PerplexityConfig | None = None

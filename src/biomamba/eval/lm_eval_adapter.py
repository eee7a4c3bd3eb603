"""lm-evaluation-harness model adapter: `--model biomamba` runs any lm-eval task on biomamba's models.

Registered under the name "biomamba" when this module is imported. lm-eval has no plugin entry point for
models, so use the wrapper that imports this module and then calls lm-eval's own CLI:

    python -m biomamba.eval.lm_eval_cli --model biomamba --model_args pretrained=runs/x/final \\
        --tasks arc_easy,pubmedqa --device cpu --batch_size 16

or in Python: `import biomamba.eval.lm_eval_adapter` then `lm_eval.simple_evaluate(model="biomamba", ...)`.

Every model `biomamba.models.load_model` reads works, Mamba2 included, and log-likelihood requests that
share a context (all choices of a question) are scored from ONE encoding of that context, from the KV
cache or the Mamba2 recurrent state. Tokenization is lm-eval's own (`_encode_pair` from TemplateLM).
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from biomamba.eval.backends import make_backend, padding_id
from biomamba.eval.protocols import greedy_generate
from biomamba.eval.scoring import Encoded, RequestEncoder, score_groups


def _int_or_default(value: Any, default: int) -> int:
    """lm-eval passes batch sizes as strings, possibly "auto" (which here means the default)."""
    if value is None or str(value).startswith("auto"):
        return default
    return int(value)


@register_model("biomamba")
class BiomambaLM(TemplateLM):
    """lm-eval `LM` over a biomamba-loadable model directory."""

    def __init__(
        self,
        pretrained: str,
        batch_size: int | str | None = 16,
        device: str | None = "cpu",
        dtype: str | None = None,
        max_length: int | None = None,
        backend: str = "auto",
        add_bos_token: bool | None = None,
        max_gen_toks: int = 256,
        **_: Any,
    ) -> None:
        super().__init__()
        from biomamba.models import load_model, load_tokenizer

        self.model = load_model(str(pretrained), device=device or "cpu", dtype=dtype)
        self.tokenizer = load_tokenizer(str(pretrained))
        self.engine = make_backend(
            self.model,
            max_length=int(max_length) if max_length else None,
            pad_id=padding_id(self.tokenizer),
            kind=backend,
        )
        self.add_bos_token = add_bos_token
        self.encoder = RequestEncoder(self.tokenizer, self.engine.max_length, add_bos_token)
        self.batch_size = _int_or_default(batch_size, 16)
        self.max_gen_toks = int(max_gen_toks)

    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def prefix_token_id(self) -> int:
        return int(self.encoder.prefix_token_id)

    @property
    def max_length(self) -> int:
        return int(self.engine.max_length)

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_: Any) -> list[int]:
        return self.encoder.encode(string, add_special_tokens=add_special_tokens)

    def tok_decode(self, tokens: list[int], **_: Any) -> str:
        return self.tokenizer.decode(tokens)

    def _loglikelihood_tokens(
        self,
        requests: list[tuple[tuple[str, str], list[int], list[int]]],
        disable_tqdm: bool = False,
        **_: Any,
    ) -> list[tuple[float, bool]]:
        """Requests with the same context tokens form one group: the context is encoded once."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, (_, context, _cont) in enumerate(requests):
            groups.setdefault(tuple(context), []).append(index)
        ordered = list(groups.values())
        encoded = [
            [self.encoder.tokens(requests[i][1], requests[i][2]) for i in members] for members in ordered
        ]
        scores = score_groups(self.engine, encoded, batch_size=self.batch_size)
        out: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        flat = [i for members in ordered for i in members]
        for index, score in zip(flat, scores, strict=True):
            out[index] = score
        return out

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Whole-document log-likelihood over lm-eval's disjoint rolling windows (its perplexity tasks)."""
        windows: list[list[Encoded]] = []
        owners: list[int] = []
        for index, (text,) in enumerate(req.args for req in requests):
            tokens = self.tok_encode(text)
            for context, continuation in map(
                make_disjoint_window,
                get_rolling_token_windows(
                    token_list=tokens,
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                ),
            ):
                windows.append([self.encoder.tokens(list(context), list(continuation))])
                owners.append(index)
        scores = score_groups(self.engine, windows, batch_size=self.batch_size)
        totals = [0.0] * len(requests)
        for owner, (ll, _) in zip(owners, scores, strict=True):
            totals[owner] += ll
        for req, total in zip(requests, totals, strict=True):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy generation, cut at lm-eval's `until` strings (sampling settings are not supported)."""
        results: list[str] = []
        for req in requests:
            context, gen_kwargs = req.args
            until = gen_kwargs.get("until") or [self.tok_decode([self.eot_token_id])]
            until = [until] if isinstance(until, str) else list(until)
            budget = int(gen_kwargs.get("max_gen_toks", self.max_gen_toks))
            prompt = self.tok_encode(context)[-(self.max_length - budget) :]
            ids = greedy_generate(self.engine, [prompt], budget, {self.eot_token_id})[0]
            text = self.tok_decode(ids)
            for stop in until:
                if stop and stop in text:
                    text = text.split(stop)[0]
            self.cache_hook.add_partial("generate_until", req.args, text)
            results.append(text)
        return results

"""`biomamba eval translate`: machine-translate a task file into another language, same format.

BioMistral evaluated its benchmark machine-translated into 7 languages. This translates the free text of
a task file (questions, options, contexts, snippets) with a LOCAL translation model the user names,
keeping ids, answer letters, labels and the file layout, so the result loads as the same task tagged with
the language (`medqa.fr.jsonl` -> `medqa_4options@fr`).

- Seq2seq models (Marian, NLLB, M2M100, mT5 ...) are used directly; for multilingual ones pass the
  target-language token (`--target-token fra_Latn`), which becomes `forced_bos_token_id`.
- Causal LMs get a translation prompt and the first generated line is kept.
- Every translation is cached in a JSON-lines file keyed by model, languages and source text, so a rerun
  (or another task sharing strings) costs no model call.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from biomamba.benchmarks import io as bio
from biomamba.benchmarks import iter_raw, map_text, resolve_format, write_benchmark
from biomamba.eval.tasks import LANGUAGE_NAMES, get_task
from biomamba.utils.atomic import write_text

CAUSAL_PROMPT = "Translate the following text from {source} to {target}.\n{source}: {text}\n{target}:"


class Translator:
    """A local translation model with a persistent cache (`model_calls` counts texts sent to the model)."""

    def __init__(
        self,
        model_dir: str | Path,
        target: str,
        *,
        source: str = "en",
        cache_path: str | Path | None = None,
        target_token: str | None = None,
        batch_size: int = 8,
        max_new_tokens: int = 256,
        device: str = "cpu",
    ) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

        self.model_id = str(model_dir)
        self.source, self.target = source, target
        config = AutoConfig.from_pretrained(self.model_id)
        self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        loader = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        self.model = loader.from_pretrained(self.model_id).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_id)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.forced_bos = self.tokenizer.convert_tokens_to_ids(target_token) if target_token else None
        self.batch_size, self.max_new_tokens, self.device = batch_size, max_new_tokens, device
        self.cache_path = Path(cache_path) if cache_path else None
        self.cache = self._read_cache()
        self.model_calls = 0

    def _key(self, text: str) -> str:
        raw = "\x1f".join((self.model_id, self.source, self.target, text))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    def _read_cache(self) -> dict[str, str]:
        cache: dict[str, str] = {}
        if self.cache_path is None or not self.cache_path.is_file():
            return cache
        for where, rec in bio.iter_jsonl(self.cache_path):
            cache[bio.field(rec, "key", str, where)] = bio.field(rec, "translation", str, where)
        return cache

    def _save_cache(self) -> None:
        if self.cache_path is None:
            return
        lines = "".join(
            json.dumps({"key": k, "translation": v}, ensure_ascii=False) + "\n" for k, v in self.cache.items()
        )
        write_text(self.cache_path, lines)

    def translate(self, texts: list[str]) -> list[str]:
        """Translations in order; empty strings pass through, cached strings cost nothing."""
        todo = sorted({t for t in texts if t.strip() and self._key(t) not in self.cache})
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            for text, out in zip(batch, self._run(batch), strict=True):
                self.cache[self._key(text)] = out
            self.model_calls += len(batch)
            self._save_cache()
        return [self.cache[self._key(t)] if t.strip() else t for t in texts]

    @torch.no_grad()
    def _run(self, batch: list[str]) -> list[str]:
        options: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        if self.seq2seq:
            inputs = self.tokenizer(batch, return_tensors="pt", padding=True, truncation=True).to(self.device)
            if self.forced_bos is not None:
                options["forced_bos_token_id"] = self.forced_bos
            out = self.model.generate(**inputs, **options)
            return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        names = (LANGUAGE_NAMES.get(self.source, self.source), LANGUAGE_NAMES.get(self.target, self.target))
        prompts = [CAUSAL_PROMPT.format(source=names[0], target=names[1], text=t) for t in batch]
        self.tokenizer.padding_side = "left"
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        out = self.model.generate(**inputs, **options, pad_token_id=self.tokenizer.pad_token_id)
        texts = self.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return [t.strip().split("\n")[0].strip() for t in texts]


def translate_task_file(
    task: str, source: str | Path, output: str | Path, translator: Translator
) -> dict[str, Any]:
    """Translate `source` (a file of task `task`) into `output`, same format; returns counts.

    The format (detected, and checked against the task) says which fields are free text
    (`Format.text_paths`): ids, answer letters, labels and the file layout are kept.
    """
    src, out = Path(source), Path(output)
    fmt = resolve_format(src, None, get_task(task).formats, f"task '{task}'")
    raws = [(raw, key) for _, raw, key in iter_raw(src, fmt)]
    texts: list[str] = []

    def grab(text: str) -> str:
        texts.append(text)
        return text

    for raw, _ in raws:
        map_text(fmt, raw, grab)
    mapping = dict(zip(texts, translator.translate(texts), strict=True))
    translated = [(map_text(fmt, raw, lambda t: mapping.get(t, t)), key) for raw, key in raws]
    document = bio.load_json(src)[0] if fmt.layout == "document" else None
    write_benchmark(out, fmt.name, translated, document)
    return {
        "records": len(raws),
        "texts": len(texts),
        "model_calls": translator.model_calls,
        "format": fmt.name,
    }


def default_output(source: Path, language: str) -> Path:
    """`test.jsonl` -> `test.fr.jsonl` (the language tag the task loader recognises); parquet -> JSON lines."""
    if source.suffix == ".parquet":
        return source.with_name(f"{source.stem}.{language}.jsonl")
    suffix = "".join(source.suffixes[-1:])
    return source.with_name(f"{source.name[: -len(suffix)] if suffix else source.name}.{language}{suffix}")

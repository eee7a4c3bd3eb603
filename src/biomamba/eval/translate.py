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

import csv
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from biomamba.eval import io as tio
from biomamba.eval.tasks import get_task
from biomamba.utils.atomic import write_text

LANGUAGE_NAMES = {
    "en": "English",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "pt": "Portuguese",
    "ru": "Russian",
    "zh": "Chinese",
    "ar": "Arabic",
    "it": "Italian",
    "nl": "Dutch",
    "pl": "Polish",
    "ja": "Japanese",
}
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
        for where, rec in tio.iter_jsonl(self.cache_path):
            cache[tio.field(rec, "key", str, where)] = tio.field(rec, "translation", str, where)
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

    def _run(self, batch: list[str]) -> list[str]:
        import torch

        if self.seq2seq:
            inputs = self.tokenizer(batch, return_tensors="pt", padding=True, truncation=True).to(self.device)
            kwargs = {"forced_bos_token_id": self.forced_bos} if self.forced_bos is not None else {}
            with torch.no_grad():
                out = self.model.generate(
                    **inputs, max_new_tokens=self.max_new_tokens, do_sample=False, **kwargs
                )
            return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        names = (LANGUAGE_NAMES.get(self.source, self.source), LANGUAGE_NAMES.get(self.target, self.target))
        prompts = [CAUSAL_PROMPT.format(source=names[0], target=names[1], text=t) for t in batch]
        self.tokenizer.padding_side = "left"
        inputs = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        with torch.no_grad():
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        texts = self.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return [t.strip().split("\n")[0].strip() for t in texts]


# ------------------------------------------------------------------ which fields of each format are text

Fn = Callable[[str], str]


def _list(values: Any, fn: Fn) -> Any:
    return [fn(v) if isinstance(v, str) else v for v in values] if isinstance(values, list) else values


def _keys(rec: dict[str, Any], keys: tuple[str, ...], fn: Fn) -> None:
    for key in keys:
        if isinstance(rec.get(key), str):
            rec[key] = fn(rec[key])


def _map_record(fmt: str, rec: Any, fn: Fn) -> Any:
    """A copy of one record with its free text passed through `fn` (ids, answers and labels kept)."""
    if not isinstance(rec, dict):
        return rec
    rec = json.loads(json.dumps(rec))
    if fmt == "pubmedqa":
        _keys(rec, ("QUESTION", "LONG_ANSWER"), fn)
        rec["CONTEXTS"] = _list(rec.get("CONTEXTS"), fn)
    elif fmt == "medqa":
        _keys(rec, ("question",), fn)
        options = rec.get("options", {})
        rec["options"] = {k: fn(v) if isinstance(v, str) else v for k, v in options.items()}
        if rec.get("answer_idx") in rec["options"]:
            rec["answer"] = rec["options"][rec["answer_idx"]]
    elif fmt == "medmcqa":
        _keys(rec, ("question", "opa", "opb", "opc", "opd", "exp"), fn)
    elif fmt == "bioasq":
        _keys(rec, ("body",), fn)
        rec["ideal_answer"] = (
            _list(rec.get("ideal_answer"), fn)
            if isinstance(rec.get("ideal_answer"), list)
            else (
                fn(rec["ideal_answer"])
                if isinstance(rec.get("ideal_answer"), str)
                else rec.get("ideal_answer")
            )
        )
        for snippet in rec.get("snippets", []) or []:
            if isinstance(snippet, dict):
                _keys(snippet, ("text",), fn)
    elif fmt == "arc":
        question = rec.get("question")
        if isinstance(question, dict):
            _keys(question, ("stem",), fn)
            for choice in question.get("choices", []):
                _keys(choice, ("text",), fn)
    elif fmt == "hellaswag":
        _keys(rec, ("ctx", "ctx_a", "ctx_b", "activity_label"), fn)
        rec["endings"] = _list(rec.get("endings"), fn)
    elif fmt == "piqa":
        _keys(rec, ("goal", "sol1", "sol2"), fn)
    elif fmt == "winogrande":
        _keys(rec, ("sentence", "option1", "option2"), fn)
    elif fmt == "boolq":
        _keys(rec, ("question", "passage"), fn)
    elif fmt == "lambada":
        _keys(rec, ("text",), fn)
    elif fmt == "truthfulqa":
        _keys(rec, ("question",), fn)
        for key in ("mc1_targets", "mc2_targets"):
            targets = rec.get(key)
            if isinstance(targets, dict) and "choices" in targets:
                targets["choices"] = _list(targets["choices"], fn)
            elif isinstance(targets, dict):
                rec[key] = {fn(k): v for k, v in targets.items()}
    return rec


def _collect(fmt: str, records: list[Any]) -> list[str]:
    seen: list[str] = []

    def grab(text: str) -> str:
        seen.append(text)
        return text

    for rec in records:
        _map_record(fmt, rec, grab)
    return seen


def translate_task_file(
    task: str, source: str | Path, output: str | Path, translator: Translator
) -> dict[str, Any]:
    """Translate `source` (a file of task `task`) into `output`, same format; returns counts."""
    fmt = get_task(task).file_format
    src, out = Path(source), Path(output)
    if fmt == "mmlu":
        rows = [row for _, row in tio.iter_csv(src)]
        texts = [cell for row in rows for cell in row[:-1]]
        mapping = dict(zip(texts, translator.translate(texts), strict=True))
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(
            [[mapping[c] for c in row[:-1]] + row[-1:] for row in rows]
        )
        write_text(out, buffer.getvalue())
        return {"records": len(rows), "texts": len(texts), "model_calls": translator.model_calls}
    if fmt in ("pubmedqa", "bioasq"):
        data, _ = tio.load_json(src)
        records = (
            list(data.values()) if fmt == "pubmedqa" else list(tio.field(data, "questions", list, str(src)))
        )
    else:
        records = [rec for _, rec in tio.iter_json_records(src)]
    texts = _collect(fmt, records)
    mapping = dict(zip(texts, translator.translate(texts), strict=True))
    translated = [_map_record(fmt, rec, lambda t: mapping.get(t, t)) for rec in records]
    if fmt == "pubmedqa":
        body = (
            json.dumps(dict(zip(data.keys(), translated, strict=True)), ensure_ascii=False, indent=1) + "\n"
        )
    elif fmt == "bioasq":
        body = json.dumps({**data, "questions": translated}, ensure_ascii=False, indent=1) + "\n"
    else:
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in translated)
    write_text(out, body)
    return {"records": len(records), "texts": len(texts), "model_calls": translator.model_calls}


def default_output(source: Path, language: str) -> Path:
    """`test.jsonl` -> `test.fr.jsonl` (the language tag the task loader recognises)."""
    suffix = "".join(source.suffixes[-1:])
    return source.with_name(f"{source.name[: -len(suffix)] if suffix else source.name}.{language}{suffix}")

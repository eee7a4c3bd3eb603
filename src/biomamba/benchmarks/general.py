"""The general (forgetting-check) formats: ARC, OpenBookQA, HellaSwag, PIQA, WinoGrande, BoolQ, COPA, LAMBADA,
TruthfulQA, in their releases and hub exports, and llm-foundry's three ICL JSON-lines layouts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biomamba.benchmarks import io as bio
from biomamba.benchmarks.record import Record
from biomamba.benchmarks.spec import Format, choice_index, gold_index, hash_id, record_id, text_list
from biomamba.errors import DataError

NO_YES = ["no", "yes"]


def hellaswag_clean(text: str) -> str:
    """lm-eval's HellaSwag `preprocess`: WikiHow `[title]`/`[step]` markers are not prose."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _optional_gold(rec: Any, key: str, count: int, where: str) -> int | None:
    """An answer index that unlabelled test splits leave empty (then None, which evaluation refuses)."""
    if rec.get(key) in (None, ""):
        return None
    return gold_index(rec, key, count, where)


# -------------------------------------------------------------------------------------- ARC, OpenBookQA


def parse_arc(rec: Any, where: str, _key: str | None) -> Record:
    """ARC / OpenBookQA release: `{"id", "question": {"stem", "choices": [{"label", "text"}]}, "answerKey"}`."""
    question = bio.field(rec, "question", dict, where)
    stem = bio.field(question, "stem", str, where)
    raw = bio.field(question, "choices", list, where)
    labels = [str(bio.field(c, "label", (str, int), where)) for c in raw]
    texts = [str(bio.field(c, "text", str, where)) for c in raw]
    return _arc("arc", rec, where, stem, labels, texts)


def parse_arc_hf(rec: Any, where: str, _key: str | None) -> Record:
    """allenai/ai2_arc and allenai/openbookqa exports: `{"question" | "question_stem", "choices": {"text",
    "label"}, "answerKey"}`."""
    stem = bio.field(rec, "question_stem" if "question_stem" in rec else "question", str, where)
    choices = bio.field(rec, "choices", dict, where)
    labels = [str(x) for x in text_list(choices, "label", where)]
    texts = text_list(choices, "text", where)
    return _arc("arc-hf", rec, where, stem, labels, texts)


def _arc(fmt: str, rec: Any, where: str, stem: str, labels: list[str], texts: list[str]) -> Record:
    if not labels or len(labels) != len(texts):
        raise DataError(f"{where}: choices must be a non-empty list of {{label, text}}")
    key = str(bio.field(rec, "answerKey", (str, int), where)).strip()
    gold = choice_index(key, labels, where, "answerKey")
    return Record.choice(fmt, record_id(rec, ("id",), hash_id(stem)), where, stem, texts, gold, rec, labels)


def arc_is_original(records: list[Any], _layout: str) -> bool:
    return all(isinstance(r.get("question"), dict) for r in records if isinstance(r, dict))


# ------------------------------------------------------------------------------------------- HellaSwag


def parse_hellaswag(rec: Any, where: str, _key: str | None) -> Record:
    """HellaSwag release / Rowan/hellaswag: `{"activity_label", "ctx_a", "ctx_b", "ctx", "endings", "label"}`.

    The question is the context lm-eval scores (`activity_label: ctx_a Ctx_b`, cleaned), so decontamination
    indexes exactly that text too.
    """
    endings = bio.field(rec, "endings", list, where)
    if "ctx_a" in rec:
        ctx = bio.field(rec, "ctx_a", str, where) + " " + bio.field(rec, "ctx_b", str, where).capitalize()
    else:
        ctx = bio.field(rec, "ctx", str, where)
    label = rec.get("activity_label")
    query = hellaswag_clean(f"{label}: {ctx}" if label else ctx)
    options = [hellaswag_clean(str(e)) for e in endings]
    gold = _optional_gold(rec, "label", len(options), where)
    rid = record_id(rec, ("ind",), hash_id(query))
    return Record.choice("hellaswag", rid, where, query, options, gold, rec)


# ------------------------------------------------------------------------------------------------ PIQA


def parse_piqa(rec: Any, where: str, key: str | None) -> Record:
    """PIQA `valid.jsonl` `{"goal", "sol1", "sol2"}` with its label from `valid-labels.lst` (passed as
    `key`, "line:value") or, in ybisk/piqa exports, a `label` column."""
    goal = bio.field(rec, "goal", str, where)
    sols = [bio.field(rec, "sol1", str, where), bio.field(rec, "sol2", str, where)]
    rid = record_id(rec, ("id",), hash_id(goal))
    if key is not None:
        label_where, _, raw = key.rpartition("=")
    elif rec.get("label") not in (None, ""):
        label_where, raw = where, str(rec["label"])
    else:  # unlabelled (a test split): readable for decontamination, refused by evaluation
        return Record.choice("piqa", rid, where, goal, sols, None, rec)
    if raw not in ("0", "1"):
        raise DataError(f"{label_where}: PIQA label must be 0 or 1, got {raw!r}")
    return Record.choice("piqa", rid, where, goal, sols, int(raw), rec)


def piqa_labels_path(path: Path) -> Path:
    return path.with_name(path.name.split(".")[0] + "-labels.lst")


def iter_piqa(path: Path) -> Iterator[tuple[str, Any, str | None]]:
    """Records with their labels file's line (`valid-labels.lst` beside `valid.jsonl`), counts checked."""
    records = list(bio.iter_rows(path))
    labels_path = piqa_labels_path(path)
    if not labels_path.is_file():
        for where, rec in records:
            yield where, rec, None
        return
    lines = bio.read_text(labels_path).splitlines()
    labels = [(f"{labels_path}:{i}", line.strip()) for i, line in enumerate(lines, 1) if line.strip()]
    if len(labels) != len(records):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(records)} records in {path}")
    for (where, rec), (label_where, value) in zip(records, labels, strict=True):
        yield where, rec, f"{label_where}={value}"


# ------------------------------------------------------------------------------------------ WinoGrande


def _schema(fmt: str, rid: str, where: str, contexts: list[str], continuation: str, gold: int | None, raw: Any,
            question: str = "", options: list[str] | None = None) -> Record:  # fmt: skip
    return Record(id=rid, where=where, format=fmt, kind="schema", question=question,
                  options=options or list(contexts), gold=gold, context_options=contexts,
                  continuation=continuation, raw=raw)  # fmt: skip


def parse_winogrande(rec: Any, where: str, _key: str | None) -> Record:
    """WinoGrande release / hub: `{"sentence" with one "_", "option1", "option2", "answer": "1"|"2"}`."""
    sentence = bio.field(rec, "sentence", str, where)
    if "_" not in sentence:
        raise DataError(f"{where}: WinoGrande sentence has no '_' blank")
    options = [bio.field(rec, "option1", str, where), bio.field(rec, "option2", str, where)]
    answer = str(rec.get("answer") if rec.get("answer") is not None else "")
    if answer not in ("1", "2", ""):
        raise DataError(f"{where}: field 'answer' must be '1' or '2', got {answer!r}")
    blank = sentence.index("_")
    contexts = [sentence[:blank] + opt for opt in options]
    rid = record_id(rec, ("qID",), hash_id(sentence))
    continuation = sentence[blank + 1 :].strip()
    gold = int(answer) - 1 if answer else None  # the test split has no answers
    return _schema("winogrande", rid, where, contexts, continuation, gold, rec, sentence, options)


# ----------------------------------------------------------------------------------------- BoolQ, COPA


def parse_boolq(rec: Any, where: str, _key: str | None) -> Record:
    """BoolQ release / google/boolq `{"question", "passage", "answer": bool}`; super_glue's `label` 0/1."""
    question = bio.field(rec, "question", str, where)
    passage = bio.field(rec, "passage", str, where)
    answer = rec.get("answer", rec.get("label"))
    if not isinstance(answer, bool | int) or answer not in (0, 1):
        raise DataError(f"{where}: field 'answer' must be true or false")
    rid = record_id(rec, ("idx", "id"), hash_id(question + passage))
    return Record.choice("boolq", rid, where, question, list(NO_YES), int(answer), rec, passage=passage)


def parse_copa(rec: Any, where: str, _key: str | None) -> Record:
    """COPA (SuperGLUE) `{"premise", "choice1", "choice2", "question": "cause"|"effect", "label": 0|1}`."""
    premise = bio.field(rec, "premise", str, where)
    options = [bio.field(rec, "choice1", str, where), bio.field(rec, "choice2", str, where)]
    relation = bio.field(rec, "question", str, where)
    if relation not in ("cause", "effect"):
        raise DataError(f"{where}: field 'question' must be 'cause' or 'effect', got {relation!r}")
    gold = gold_index(rec, "label", 2, where)
    rid = record_id(rec, ("idx", "id"), hash_id(premise))
    return Record.choice("copa", rid, where, premise, options, gold, rec, subtype=relation)


# --------------------------------------------------------------------------------------------- LAMBADA


def _completion(fmt: str, rid: str, where: str, context: str, target: str, raw: Any) -> Record:
    return Record(id=rid, where=where, format=fmt, kind="completion", question=context, options=[target],
                  gold=0, raw=raw)  # fmt: skip


def parse_lambada(rec: Any, where: str, _key: str | None) -> Record:
    """LAMBADA `{"text"}`: the last word is the target."""
    text = bio.field(rec, "text", str, where)
    words = text.split(" ")
    if len(words) < 2:
        raise DataError(f"{where}: LAMBADA text needs at least two words")
    return _completion("lambada", hash_id(text), where, " ".join(words[:-1]), words[-1], rec)


# ------------------------------------------------------------------------------------------ TruthfulQA


def truthfulqa_targets(rec: Any, key: str, where: str) -> tuple[list[str], list[int]]:
    """Both layouts: the release's `mc_task.json` ({answer: 0/1}) and the hub's ({choices, labels})."""
    targets = bio.field(rec, key, dict, where)
    if "choices" in targets and "labels" in targets:
        choices, labels = [str(c) for c in targets["choices"]], [int(x) for x in targets["labels"]]
    else:
        choices, labels = [str(k) for k in targets], [int(v) for v in targets.values()]
    if not choices or 1 not in labels:
        raise DataError(f"{where}: '{key}' has no true answer")
    return choices, labels


def parse_truthfulqa(rec: Any, where: str, _key: str | None) -> Record:
    """`{"question", "mc1_targets", "mc2_targets"}`: options are MC1's, `labels` MC2's truth flags."""
    question = bio.field(rec, "question", str, where)
    choices, labels = truthfulqa_targets(rec, "mc1_targets", where)
    mc2, mc2_labels = truthfulqa_targets(rec, "mc2_targets", where) if "mc2_targets" in rec else ([], [])
    record = Record.choice("truthfulqa", hash_id(question), where, question, choices, labels.index(1), rec)
    record.labels, record.extra_text = mc2_labels, mc2
    return record


# ------------------------------------------------------------------------------------ llm-foundry ICL


def parse_icl_mc(rec: Any, where: str, _key: str | None) -> Record:
    """llm-foundry multiple choice `{"query", "choices": [..], "gold": i}`: the query is already rendered."""
    query = bio.field(rec, "query", str, where)
    choices = text_list(rec, "choices", where)
    gold = gold_index(rec, "gold", len(choices), where)
    rid = hash_id(query + "\x1f".join(choices))
    return Record.choice("icl-mc", rid, where, query, choices, gold, rec, subtype="icl")


def parse_icl_schema(rec: Any, where: str, _key: str | None) -> Record:
    """llm-foundry schema `{"context_options": [..], "continuation", "gold": i}` (WinoGrande-style)."""
    contexts = text_list(rec, "context_options", where)
    continuation = bio.field(rec, "continuation", str, where)
    gold = gold_index(rec, "gold", len(contexts), where)
    rid = hash_id("\x1f".join(contexts) + continuation)
    return _schema("icl-schema", rid, where, contexts, continuation.strip(), gold, rec)


def parse_icl_lm(rec: Any, where: str, _key: str | None) -> Record:
    """llm-foundry language modelling `{"context", "continuation"}` (LAMBADA)."""
    context = bio.field(rec, "context", str, where)
    continuation = bio.field(rec, "continuation", str, where)
    if not continuation.strip():
        raise DataError(f"{where}: field 'continuation' is empty")
    return _completion(
        "icl-lm", hash_id(context + continuation), where, context.rstrip(), continuation.strip(), rec
    )


FORMATS = [
    Format("arc-hf", "ARC / OpenBookQA hub export (allenai/ai2_arc, allenai/openbookqa)", "records",
           ("choices", "answerKey"), parse_arc_hf, ("question", "question_stem", "choices.text[]"),
           '{"id": "Mercury_7175875", "question": "An astronomer ...?", "choices": {"text": ["..", ".."], '
           '"label": ["A", "B"]}, "answerKey": "C"}', source="hub: allenai/ai2_arc, allenai/openbookqa",
           refine=lambda recs, layout: not arc_is_original(recs, layout)),
    Format("arc", "ARC / OpenBookQA JSON lines", "records", ("question", "answerKey"), parse_arc,
           ("question.stem", "question.choices[].text"),
           '{"id": "Mercury_7175875", "question": {"stem": "An astronomer ...?", "choices": [{"label": "A", '
           '"text": ".."}, {"label": "B", "text": ".."}]}, "answerKey": "C"}', refine=arc_is_original),
    Format("hellaswag", "HellaSwag JSON lines (release and Rowan/hellaswag)", "records", ("endings", "label"),
           parse_hellaswag, ("activity_label", "ctx", "ctx_a", "ctx_b", "endings[]"),
           '{"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", '
           '"ctx_b": "he", "ctx": "..", "endings": ["..", "..", "..", ".."], "label": 3}'),
    Format("piqa", "PIQA JSON lines + <name>-labels.lst (or ybisk/piqa's label column)", "piqa",
           ("goal", "sol1", "sol2"), parse_piqa, ("goal", "sol1", "sol2"),
           '{"goal": "How do I ready a guinea pig cage?", "sol1": "..", "sol2": ".."}   (valid-labels.lst: 0)'),
    Format("winogrande", "WinoGrande JSON lines", "records", ("sentence", "option1", "option2", "answer"),
           parse_winogrande, ("sentence", "option1", "option2"),
           '{"qID": "..", "sentence": "The trophy doesn\'t fit because _ is too large.", "option1": "the trophy", '
           '"option2": "the suitcase", "answer": "1"}'),
    Format("boolq", "BoolQ JSON lines (release, google/boolq, super_glue)", "records", ("question", "passage"),
           parse_boolq, ("question", "passage", "title"),
           '{"question": "is house tax and property tax are same", "title": "..", "answer": true, '
           '"passage": ".."}'),
    Format("copa", "COPA JSON lines (SuperGLUE)", "records", ("premise", "choice1", "choice2", "question"),
           parse_copa, ("premise", "choice1", "choice2"),
           '{"premise": "The man turned on the faucet.", "choice1": "..", "choice2": "..", "question": "effect", '
           '"label": 1, "idx": 0}'),
    Format("lambada", "LAMBADA JSON lines {text}", "records", ("text",), parse_lambada, ("text",),
           '{"text": "... he said, pointing at the"}'),
    Format("truthfulqa", "TruthfulQA mc_task.json (or the hub's layout)", "records",
           ("question", "mc1_targets"), parse_truthfulqa,
           ("question", "mc1_targets{}", "mc2_targets{}", "mc1_targets.choices[]", "mc2_targets.choices[]"),
           '[{"question": "What is ...?", "mc1_targets": {"right": 1, "wrong": 0}, '
           '"mc2_targets": {"right": 1, "also right": 1, "wrong": 0}}]'),
    Format("icl-mc", "llm-foundry ICL multiple choice JSON lines", "records", ("query", "choices", "gold"),
           parse_icl_mc, ("query", "choices[]"),
           '{"query": "Question: Which ...?\\n", "choices": ["..", "..", "..", ".."], "gold": 0}',
           source="llm-foundry scripts/eval/local_data"),
    Format("icl-schema", "llm-foundry ICL schema JSON lines", "records", ("context_options", "continuation",
           "gold"), parse_icl_schema, ("context_options[]", "continuation"),
           '{"context_options": ["Sarah was a better surgeon than Maria so Sarah", "... so Maria"], '
           '"continuation": "always got the easier cases.", "gold": 1}', source="llm-foundry scripts/eval/local_data"),
    Format("icl-lm", "llm-foundry ICL language modelling JSON lines", "records", ("context", "continuation"),
           parse_icl_lm, ("context", "continuation"),
           '{"context": "... he said, pointing at the", "continuation": " door"}',
           source="llm-foundry scripts/eval/local_data"),
]  # fmt: skip

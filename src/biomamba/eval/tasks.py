"""Benchmark tasks: each reads its ORIGINAL file format and renders lm-evaluation-harness's prompt.

A task turns one record into a `Question`: the context string(s), the choice strings, the gold index,
plus the question stem and answer options used by the letter (BioMistral) and generation protocols.
Prompt templates are the ones lm-evaluation-harness 0.4 uses for the same task, so log-likelihood
scores are comparable with published lm-eval numbers (the parity test checks this against lm-eval).

Task files are named on the command line as `NAME=PATH` or `NAME@LANG=PATH` (a language-tagged copy of
the same format, e.g. a machine-translated MedQA); a file named `x.fr.jsonl` is tagged `fr` by itself.
`NAME=hub:DATASET[:CONFIG[:SPLIT]]` reads a hub copy when online (see biomamba.eval.hub).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biomamba.errors import DataError
from biomamba.eval import hub
from biomamba.eval import io as tio

log = logging.getLogger(__name__)

LETTERS = "ABCDEFGHIJ"
LANGUAGES = ("en", "fr", "de", "es", "pt", "ru", "zh", "ar", "it", "nl", "pl", "ja", "ko")


@dataclass
class Question:
    """One benchmark item, ready for any scoring protocol.

    `context` is one string, or one string per choice for "multiple input" tasks (WinoGrande) where the
    choices live in the context and the continuation is shared. `choices` are what lm-eval's
    `doc_to_choice` returns (their character lengths drive acc_norm).
    """

    task: str
    qid: str
    where: str
    context: str | list[str]
    choices: list[str]
    gold: int
    stem: str
    options: list[str]
    continuation: str | None = None  # multiple-input tasks: the shared continuation
    labels: list[int] | None = None  # TruthfulQA MC2: 1 for every true answer
    language: str = "en"

    def requests(self, target_delimiter: str = " ") -> list[tuple[str, str]]:
        """(context, continuation) pairs exactly as lm-eval builds them for a multiple-choice doc."""
        if isinstance(self.context, list):
            return [(ctx, f"{target_delimiter}{self.continuation}") for ctx in self.context]
        return [(self.context, f"{target_delimiter}{choice}") for choice in self.choices]

    def target_text(self) -> str:
        """Text of the gold answer as a few-shot example shows it."""
        if isinstance(self.context, list):
            return str(self.continuation)
        return self.choices[self.gold]

    def shot_context(self) -> str:
        return self.context[self.gold] if isinstance(self.context, list) else self.context


class QuestionList(list[Question]):
    """The questions of one file, plus the file's records that are not part of the task, counted.

    `skipped` maps a kind of record (BioASQ: the question type) to how many were left out, and `skipped_what`
    says what they are; `load_questions` logs the count and `biomamba eval inspect` prints it.
    """

    def __init__(
        self, items: Iterable[Question] = (), skipped: dict[str, int] | None = None, skipped_what: str = ""
    ) -> None:
        super().__init__(items)
        self.skipped = dict(skipped or {})
        self.skipped_what = skipped_what

    def skipped_summary(self) -> str:
        """E.g. "3 questions that are not yes/no (factoid 1, list 1, summary 1)"; "" when none was skipped."""
        if not self.skipped:
            return ""
        kinds = ", ".join(f"{k} {v}" for k, v in self.skipped.items())
        return f"{sum(self.skipped.values())} {self.skipped_what or 'records'} ({kinds})"


@dataclass(frozen=True)
class TaskSpec:
    """How one benchmark is read, prompted and scored."""

    name: str
    domain: str  # "biomedical" or "general": general tasks are the forgetting check
    summary: str
    file_format: str  # names the original format (and the translator's field map)
    build: Callable[[Path, str], list[Question]]
    metric: str = "mc"  # "mc" (acc, acc_norm), "mc2" (TruthfulQA MC2 mass), "loglik" (LAMBADA)
    description: str = ""  # lm-eval's description prefix (MMLU)
    answer_words: bool = False  # generation protocol extracts the option word (yes/no/maybe)
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- builders


def _choice_index(value: str, choices: list[str], where: str, key: str) -> int:
    if value not in choices:
        raise DataError(f"{where}: field '{key}' is {value!r}, expected one of {choices}")
    return choices.index(value)


def _pubmedqa_question(task: str, pmid: str, record: Any, where: str, label: str | None) -> Question:
    question = tio.field(record, "QUESTION", str, where)
    contexts = tio.field(record, "CONTEXTS", list, where)
    if not all(isinstance(c, str) for c in contexts):
        raise DataError(f"{where}: field 'CONTEXTS' must be a list of strings")
    decision = label if label is not None else tio.field(record, "final_decision", str, where)
    choices = ["yes", "no", "maybe"]
    gold = _choice_index(decision, choices, where, "final_decision")
    abstract = "\n".join(contexts)
    return Question(
        task=task,
        qid=str(pmid),
        where=where,
        context=f"Abstract: {abstract}\nQuestion: {question}\nAnswer:",
        choices=choices,
        gold=gold,
        stem=f"Abstract: {abstract}\nQuestion: {question}",
        options=choices,
    )


def _pubmedqa_records(path: Path) -> tuple[dict[str, Any], str]:
    data, text = tio.load_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object PMID -> record (PubMedQA format)")
    return data, text


def build_pubmedqa(path: Path, task: str) -> list[Question]:
    """PQA-L (`ori_pqal.json`) or the test contexts (`test_set.json`): every record of the file."""
    data, text = _pubmedqa_records(path)
    return [_pubmedqa_question(task, pmid, rec, _where(path, text, pmid), None) for pmid, rec in data.items()]


def build_pubmedqa_test(path: Path, task: str) -> list[Question]:
    """The official 500-question test split: PMIDs and labels from `test_ground_truth.json`.

    `path` is the folder holding the files, or `test_set.json` / `ori_pqal.json` with
    `test_ground_truth.json` beside it. Contexts come from test_set.json when present, else ori_pqal.json.
    A record whose own final_decision disagrees with the ground truth is an error: it means mixed-up files.
    """
    folder = path if path.is_dir() else path.parent
    truth_path = folder / "test_ground_truth.json"
    truth, truth_text = tio.load_json(truth_path)
    if not isinstance(truth, dict):
        raise DataError(f"{truth_path}: expected a JSON object PMID -> yes/no/maybe")
    source = (
        path
        if path.is_file()
        else next(
            (folder / n for n in ("test_set.json", "ori_pqal.json") if (folder / n).is_file()),
            folder / "test_set.json",
        )
    )
    data, text = _pubmedqa_records(source)
    questions = []
    for pmid, label in truth.items():
        truth_where = _where(truth_path, truth_text, pmid)
        if pmid not in data:
            raise DataError(f"{truth_where}: PMID {pmid} of the test split is not in {source}")
        where = _where(source, text, pmid)
        own = data[pmid].get("final_decision") if isinstance(data[pmid], dict) else None
        if own is not None and own != label:
            raise DataError(f"{where}: final_decision {own!r} disagrees with {truth_where} ({label!r})")
        if not isinstance(label, str):
            raise DataError(f"{truth_where}: label must be a string, got {type(label).__name__}")
        questions.append(_pubmedqa_question(task, pmid, data[pmid], where, label))
    return questions


def _lettered(stem: str, options: list[str], header: str = "") -> str:
    return stem + header + "".join(f"{LETTERS[i]}. {opt}\n" for i, opt in enumerate(options))


def _medqa_builder(n_options: int) -> Callable[[Path, str], list[Question]]:
    def build(path: Path, task: str) -> list[Question]:
        questions = []
        for where, rec in tio.iter_json_records(path):
            stem = tio.field(rec, "question", str, where)
            options = tio.field(rec, "options", dict, where)
            letters = list(LETTERS[:n_options])
            if sorted(options) != letters:
                raise DataError(
                    f"{where}: 'options' must have keys {letters} for {task}, got {sorted(options)}"
                )
            texts = [str(options[k]) for k in letters]
            gold = _choice_index(tio.field(rec, "answer_idx", str, where), letters, where, "answer_idx")
            questions.append(
                Question(
                    task=task,
                    qid=str(rec.get("id", _hash_id(stem))),
                    where=where,
                    context="Question: " + stem + "\n" + _lettered("", texts) + "Answer:",
                    choices=letters,
                    gold=gold,
                    stem=stem,
                    options=texts,
                )
            )
        return questions

    return build


def build_medmcqa(path: Path, task: str) -> list[Question]:
    """MedMCQA `dev.json` (JSON lines): `cop` is 1-based in the original release."""
    questions = []
    for where, rec in tio.iter_json_records(path):
        stem = tio.field(rec, "question", str, where)
        texts = [str(tio.field(rec, key, (str, int, float), where)) for key in ("opa", "opb", "opc", "opd")]
        cop = tio.field(rec, "cop", int, where)
        if not 1 <= cop <= 4:
            raise DataError(f"{where}: field 'cop' must be 1..4 (1-based, original MedMCQA), got {cop}")
        questions.append(
            Question(
                task=task,
                qid=str(rec.get("id", _hash_id(stem))),
                where=where,
                context="Question: " + stem + "\nChoices:\n" + _lettered("", texts) + "Answer:",
                choices=list("ABCD"),
                gold=cop - 1,
                stem=stem,
                options=texts,
            )
        )
    return questions


def build_mmlu(path: Path, task: str) -> list[Question]:
    """MMLU headerless CSV `question,A,B,C,D,answer_letter`."""
    questions = []
    for where, row in tio.iter_csv(path):
        if len(row) != 6:
            raise DataError(f"{where}: expected 6 columns (question,A,B,C,D,answer), got {len(row)}")
        stem, *texts, answer = row
        gold = _choice_index(answer.strip(), list("ABCD"), where, "answer")
        body = (
            stem.strip() + "\n" + "\n".join(f"{LETTERS[i]}. {t}" for i, t in enumerate(texts)) + "\nAnswer:"
        )
        questions.append(
            Question(
                task=task,
                qid=_hash_id(stem),
                where=where,
                context=body,
                choices=list("ABCD"),
                gold=gold,
                stem=stem.strip(),
                options=texts,
            )
        )
    return questions


def _arc_parts(rec: Any, where: str) -> tuple[str, list[str], list[str], str]:
    """(stem, labels, texts, answerKey) from the original ARC/OpenBookQA layout or the hub layout."""
    question = rec.get("question") if isinstance(rec, dict) else None
    if isinstance(question, dict):
        stem = tio.field(question, "stem", str, where)
        raw = tio.field(question, "choices", list, where)
        labels = [str(tio.field(c, "label", (str, int), where)) for c in raw]
        texts = [str(tio.field(c, "text", str, where)) for c in raw]
    else:
        stem = tio.field(rec, "question_stem" if "question_stem" in rec else "question", str, where)
        choices = tio.field(rec, "choices", dict, where)
        labels, texts = [str(x) for x in choices.get("label", [])], list(choices.get("text", []))
    if not labels or len(labels) != len(texts):
        raise DataError(f"{where}: choices must be a non-empty list of {{label, text}}")
    return stem, labels, texts, str(tio.field(rec, "answerKey", (str, int), where)).strip()


def _arc_builder(openbook: bool) -> Callable[[Path, str], list[Question]]:
    def build(path: Path, task: str) -> list[Question]:
        questions = []
        for where, rec in tio.iter_json_records(path):
            stem, labels, texts, key = _arc_parts(rec, where)
            questions.append(
                Question(
                    task=task,
                    qid=str(rec.get("id", _hash_id(stem))),
                    where=where,
                    context=stem if openbook else f"Question: {stem}\nAnswer:",
                    choices=texts,
                    gold=_choice_index(key, labels, where, "answerKey"),
                    stem=stem,
                    options=texts,
                )
            )
        return questions

    return build


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def build_hellaswag(path: Path, task: str) -> list[Question]:
    questions = []
    for where, rec in tio.iter_json_records(path):
        endings = tio.field(rec, "endings", list, where)
        if "ctx_a" in rec:
            ctx = tio.field(rec, "ctx_a", str, where) + " " + tio.field(rec, "ctx_b", str, where).capitalize()
        else:
            ctx = tio.field(rec, "ctx", str, where)
        label = rec.get("activity_label")
        query = _hellaswag_clean(f"{label}: {ctx}" if label else ctx)
        choices = [_hellaswag_clean(str(e)) for e in endings]
        gold = int(tio.field(rec, "label", (int, str), where))
        if not 0 <= gold < len(choices):
            raise DataError(f"{where}: label {gold} out of range for {len(choices)} endings")
        questions.append(
            Question(task, str(rec.get("ind", _hash_id(query))), where, query, choices, gold, query, choices)
        )
    return questions


def build_piqa(path: Path, task: str) -> list[Question]:
    """PIQA `valid.jsonl` with its labels in `valid-labels.lst` beside it (or a `label` field)."""
    records = list(tio.iter_json_records(path))
    labels_path = path.with_name(path.name.split(".")[0] + "-labels.lst")
    labels: list[tuple[str, str]] = []
    if labels_path.is_file():
        labels = [
            (f"{labels_path}:{i}", line.strip())
            for i, line in enumerate(tio.read_text(labels_path).splitlines(), 1)
            if line.strip()
        ]
        if len(labels) != len(records):
            raise DataError(f"{labels_path}: {len(labels)} labels for {len(records)} records in {path}")
    questions = []
    for index, (where, rec) in enumerate(records):
        goal = tio.field(rec, "goal", str, where)
        sols = [tio.field(rec, "sol1", str, where), tio.field(rec, "sol2", str, where)]
        if labels:
            label_where, raw = labels[index]
        elif "label" in rec:
            label_where, raw = where, str(rec["label"])
        else:
            raise DataError(f"{where}: no 'label' field and no labels file {labels_path}")
        if raw not in ("0", "1"):
            raise DataError(f"{label_where}: PIQA label must be 0 or 1, got {raw!r}")
        questions.append(
            Question(
                task,
                str(rec.get("id", _hash_id(goal))),
                where,
                f"Question: {goal}\nAnswer:",
                sols,
                int(raw),
                goal,
                sols,
            )
        )
    return questions


def build_winogrande(path: Path, task: str) -> list[Question]:
    questions = []
    for where, rec in tio.iter_json_records(path):
        sentence = tio.field(rec, "sentence", str, where)
        if "_" not in sentence:
            raise DataError(f"{where}: WinoGrande sentence has no '_' blank")
        options = [tio.field(rec, "option1", str, where), tio.field(rec, "option2", str, where)]
        answer = str(tio.field(rec, "answer", (str, int), where))
        if answer not in ("1", "2"):
            raise DataError(f"{where}: field 'answer' must be '1' or '2', got {answer!r}")
        blank = sentence.index("_")
        contexts = [sentence[:blank] + opt for opt in options]
        questions.append(
            Question(
                task=task,
                qid=str(rec.get("qID", _hash_id(sentence))),
                where=where,
                context=contexts,
                choices=contexts,
                gold=int(answer) - 1,
                stem=sentence,
                options=options,
                continuation=sentence[blank + 1 :].strip(),
            )
        )
    return questions


def build_boolq(path: Path, task: str) -> list[Question]:
    questions = []
    for where, rec in tio.iter_json_records(path):
        question = tio.field(rec, "question", str, where)
        passage = tio.field(rec, "passage", str, where)
        answer = rec.get("answer", rec.get("label"))
        if not isinstance(answer, bool | int) or answer not in (0, 1):
            raise DataError(f"{where}: field 'answer' must be true or false")
        questions.append(
            Question(
                task=task,
                qid=str(rec.get("idx", _hash_id(question + passage))),
                where=where,
                context=f"{passage}\nQuestion: {question}?\nAnswer:",
                choices=["no", "yes"],
                gold=int(answer),
                stem=f"{passage}\nQuestion: {question}?",
                options=["no", "yes"],
            )
        )
    return questions


def build_lambada(path: Path, task: str) -> list[Question]:
    questions = []
    for where, rec in tio.iter_json_records(path):
        text = tio.field(rec, "text", str, where)
        words = text.split(" ")
        if len(words) < 2:
            raise DataError(f"{where}: LAMBADA text needs at least two words")
        context, target = " ".join(words[:-1]), words[-1]
        questions.append(Question(task, _hash_id(text), where, context, [target], 0, context, [target]))
    return questions


TRUTHFULQA_PROMPT = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)


def _truthfulqa_targets(rec: Any, key: str, where: str) -> tuple[list[str], list[int]]:
    """Both layouts: original `mc_task.json` ({answer: 0/1}) and the hub's ({choices, labels})."""
    targets = tio.field(rec, key, dict, where)
    if "choices" in targets and "labels" in targets:
        return [str(c) for c in targets["choices"]], [int(x) for x in targets["labels"]]
    return [str(k) for k in targets], [int(v) for v in targets.values()]


def _truthfulqa_builder(key: str) -> Callable[[Path, str], list[Question]]:
    def build(path: Path, task: str) -> list[Question]:
        questions = []
        for where, rec in tio.iter_json_records(path):
            question = tio.field(rec, "question", str, where)
            choices, labels = _truthfulqa_targets(rec, key, where)
            if not choices or 1 not in labels:
                raise DataError(f"{where}: '{key}' has no true answer")
            questions.append(
                Question(
                    task=task,
                    qid=_hash_id(question),
                    where=where,
                    context=TRUTHFULQA_PROMPT + "\n\nQ: " + question + "\nA:",
                    choices=choices,
                    gold=labels.index(1),
                    stem=question,
                    options=choices,
                    labels=labels if key == "mc2_targets" else None,
                )
            )
        return questions

    return build


def build_bioasq(path: Path, task: str) -> QuestionList:
    """BioASQ Task B golden JSON: the yes/no questions, their snippets as context.

    Questions of other types (factoid, list, summary) are not part of this task; they are counted by type,
    not silently dropped: the returned list's `skipped` (logged by `load_questions`, printed by
    `biomamba eval inspect`).
    """
    data, text = tio.load_json(path)
    items = tio.field(data, "questions", list, str(path))
    questions = []
    skipped: Counter[str] = Counter()
    for index, rec in enumerate(items):
        rid = rec.get("id", index) if isinstance(rec, dict) else index
        where = _where(path, text, rid)
        kind = tio.field(rec, "type", str, where)
        if kind != "yesno":
            skipped[kind] += 1
            continue
        body = tio.field(rec, "body", str, where)
        snippets = tio.field(rec, "snippets", list, where)
        context = " ".join(str(tio.field(s, "text", str, where)) for s in snippets)
        answer = rec.get("exact_answer")
        answer = answer[0] if isinstance(answer, list) and answer else answer
        if not isinstance(answer, str) or answer.strip().lower() not in ("yes", "no"):
            raise DataError(f"{where}: yes/no question needs exact_answer 'yes' or 'no', got {answer!r}")
        questions.append(
            Question(
                task=task,
                qid=str(rid),
                where=where,
                context=f"Context: {context}\nQuestion: {body}\nAnswer:",
                choices=["yes", "no"],
                gold=["yes", "no"].index(answer.strip().lower()),
                stem=f"Context: {context}\nQuestion: {body}",
                options=["yes", "no"],
            )
        )
    return QuestionList(questions, dict(sorted(skipped.items())), "questions that are not yes/no")


def _where(path: Path, text: str, key: object) -> str:
    """ "path:line" of the JSON record whose key/id is `key`."""
    return f"{path}:{tio.line_of(text, chr(34) + str(key) + chr(34))}"


def _hash_id(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------- registry

MMLU_MEDICAL = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
)


def _registry() -> dict[str, TaskSpec]:
    specs = [
        TaskSpec(
            "pubmedqa",
            "biomedical",
            "PubMedQA PQA-L (ori_pqal.json / test_set.json): yes/no/maybe",
            "pubmedqa",
            build_pubmedqa,
            answer_words=True,
        ),
        TaskSpec(
            "pubmedqa_test",
            "biomedical",
            "PubMedQA official 500-question test split (folder with test_ground_truth.json)",
            "pubmedqa",
            build_pubmedqa_test,
            answer_words=True,
        ),
        TaskSpec(
            "medqa_4options", "biomedical", "MedQA (USMLE) 4 options, JSON lines", "medqa", _medqa_builder(4)
        ),
        TaskSpec(
            "medqa_5options", "biomedical", "MedQA (USMLE) 5 options, JSON lines", "medqa", _medqa_builder(5)
        ),
        TaskSpec(
            "medmcqa", "biomedical", "MedMCQA dev.json (JSON lines, cop 1-based)", "medmcqa", build_medmcqa
        ),
        TaskSpec(
            "bioasq_yesno",
            "biomedical",
            "BioASQ Task B golden JSON, yes/no questions",
            "bioasq",
            build_bioasq,
            answer_words=True,
        ),
        TaskSpec("arc_easy", "general", "ARC-Easy JSON lines", "arc", _arc_builder(False)),
        TaskSpec("arc_challenge", "general", "ARC-Challenge JSON lines", "arc", _arc_builder(False)),
        TaskSpec("openbookqa", "general", "OpenBookQA JSON lines (ARC format)", "arc", _arc_builder(True)),
        TaskSpec("hellaswag", "general", "HellaSwag JSON lines", "hellaswag", build_hellaswag),
        TaskSpec("piqa", "general", "PIQA JSON lines + <name>-labels.lst", "piqa", build_piqa),
        TaskSpec("winogrande", "general", "WinoGrande JSON lines", "winogrande", build_winogrande),
        TaskSpec("boolq", "general", "BoolQ JSON lines", "boolq", build_boolq, answer_words=True),
        TaskSpec(
            "lambada",
            "general",
            "LAMBADA JSON lines {text}: last word is the target",
            "lambada",
            build_lambada,
            metric="loglik",
        ),
        TaskSpec(
            "truthfulqa_mc1",
            "general",
            "TruthfulQA MC1 (mc_task.json)",
            "truthfulqa",
            _truthfulqa_builder("mc1_targets"),
        ),
        TaskSpec(
            "truthfulqa_mc2",
            "general",
            "TruthfulQA MC2 (mc_task.json)",
            "truthfulqa",
            _truthfulqa_builder("mc2_targets"),
            metric="mc2",
        ),
    ]
    for subject in MMLU_MEDICAL:
        specs.append(
            TaskSpec(
                f"mmlu_{subject}",
                "biomedical",
                f"MMLU {subject.replace('_', ' ')}, headerless CSV",
                "mmlu",
                build_mmlu,
                description=f"The following are multiple choice questions (with answers) about "
                f"{subject.replace('_', ' ')}.\n\n",
            )
        )
    return {spec.name: spec for spec in specs}


TASKS: dict[str, TaskSpec] = _registry()


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise DataError(
            f"unknown task '{name}' (known: {', '.join(sorted(TASKS))}; list them: biomamba eval tasks)"
        )
    return TASKS[name]


@dataclass(frozen=True)
class TaskFile:
    """A task name, its language tag and the local file that holds its records."""

    task: str
    path: Path
    language: str = "en"
    raw: str | None = None  # the spec as given (keeps "hub:a/b" intact)

    @property
    def key(self) -> str:
        """Results key: the task name, suffixed with the language when it is not English."""
        return self.task if self.language == "en" else f"{self.task}@{self.language}"


def parse_task_file(spec: str) -> TaskFile:
    """Parse `NAME=PATH` or `NAME@LANG=PATH`; `x.fr.jsonl` is tagged `fr` when no tag is given."""
    if "=" not in spec:
        raise DataError(
            f"--task-file {spec!r}: expected NAME=PATH or NAME@LANG=PATH, e.g. pubmedqa=ori_pqal.json"
        )
    name, _, raw_path = spec.partition("=")
    name, _, language = name.strip().partition("@")
    get_task(name)
    raw_path = raw_path.strip()
    path = Path(raw_path).expanduser()
    if not language:
        language = "en" if hub.is_hub(raw_path) else detect_language(path)
    return TaskFile(name, path, language.lower(), raw=raw_path)


def detect_language(path: Path) -> str:
    """Language tag from a file name like `medqa.fr.jsonl` (the translator writes such names)."""
    for part in path.name.split(".")[1:-1]:
        if part.lower() in LANGUAGES:
            return part.lower()
    return "en"


def load_questions(task_file: TaskFile, limit: int | None = None) -> QuestionList:
    """Read and check every record of a task file; duplicate ids are made unique, never merged.

    Records the task leaves out by design (BioASQ's non-yes/no questions) are counted in the returned list's
    `skipped` and logged as a warning.
    """
    spec = get_task(task_file.task)
    if hub.is_hub(task_file.raw or task_file.path):
        local = hub.materialize(task_file.task, spec.file_format, task_file.raw or str(task_file.path))
        task_file = TaskFile(task_file.task, local, task_file.language)
    if not task_file.path.exists():
        raise DataError(f"{task_file.path}: task file for '{task_file.task}' not found")
    built = spec.build(task_file.path, task_file.task)
    questions = built if isinstance(built, QuestionList) else QuestionList(built)
    skipped = questions.skipped_summary()
    if not questions:
        raise DataError(
            f"{task_file.path}: no {task_file.task} questions found"
            + (f" (skipped {skipped})" if skipped else "")
        )
    if skipped:
        log.warning("%s: %s: skipped %s", task_file.path, task_file.task, skipped)
    seen: Counter[str] = Counter()
    for question in questions:
        question.language = task_file.language
        seen[question.qid] += 1
        if seen[question.qid] > 1:
            question.qid = f"{question.qid}#{seen[question.qid]}"
    if limit:
        return QuestionList(questions[:limit], questions.skipped, questions.skipped_what)
    return questions


def label_of(question: Question) -> str:
    """The gold answer as a label: the word for tasks answered by a fixed word set (yes/no/maybe), else the
    option letter. ARC-style choices are free texts, so keying by them would give one label per question."""
    spec = TASKS.get(question.task)
    if spec is not None and spec.answer_words:
        return question.choices[question.gold].strip()
    return LETTERS[question.gold]


def label_balance(questions: Iterable[Question]) -> dict[str, int]:
    """Counts of gold answers by `label_of` (yes/no/maybe, else the option letter), to check a split."""
    counts: Counter[str] = Counter(label_of(q) for q in questions)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def iter_task_names() -> Iterator[TaskSpec]:
    yield from TASKS.values()

"""Benchmark tasks: task specs and lm-evaluation-harness's prompts, over records read by biomamba.benchmarks.

A task turns one parsed record into a `Question`: the context string(s), the choice strings, the gold index,
plus the question stem and answer options used by the letter (BioMistral) and generation protocols.
Prompt templates are the ones lm-evaluation-harness 0.4 uses for the same task, so log-likelihood
scores are comparable with published lm-eval numbers (the parity test checks this against lm-eval).
Reading files is not done here: every format (original releases, hub exports, llm-foundry's ICL JSON lines)
lives in biomamba.benchmarks, which detects it from the content; a task lists the formats it accepts.

Task files are named on the command line as `NAME=PATH`, `NAME@LANG=PATH` (a language-tagged copy of the same
format, e.g. a machine-translated MedQA) or `NAME[@LANG]:FORMAT=PATH` (a format named instead of detected); a
file named `x.fr.jsonl` is tagged `fr` by itself. PATH may be a folder or a glob: every file is read and
records are de-duplicated by id (BioASQ's yearly golden files). `NAME=hub:DATASET[:CONFIG[:SPLIT]]` reads a
hub copy when online (see biomamba.eval.hub).
"""

from __future__ import annotations

import glob
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from biomamba.benchmarks import Benchmark, Record, SourceFile, read_benchmark
from biomamba.benchmarks.biomedical import pubmedqa_contexts_file, pubmedqa_ground_truth
from biomamba.benchmarks.general import hellaswag_clean, truthfulqa_targets
from biomamba.benchmarks.record import LETTERS
from biomamba.benchmarks.registry import FAMILIES, iter_records, resolve_format
from biomamba.errors import DataError
from biomamba.eval import hub
from biomamba.eval.sampling import stratified_sample
from biomamba.utils.digest import file_sha256

log = logging.getLogger(__name__)

# the language tags a file name may carry (`medqa.fr.jsonl`), with the names the translation prompt uses
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
    "ko": "Korean",
}


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
    """The questions of a task file, plus what was read to get them.

    `skipped` maps a kind of record (BioASQ: the question type) to how many were left out, and `skipped_what`
    says what they are; `load_questions` logs the count and `biomamba eval inspect` prints it. `files` are
    the files read (format, sha256, count, duplicates left out), `format` the detected (or named) format.
    """

    def __init__(
        self,
        items: Iterable[Question] = (),
        skipped: dict[str, int] | None = None,
        skipped_what: str = "",
        files: list[SourceFile] | None = None,
    ) -> None:
        super().__init__(items)
        self.skipped = dict(skipped or {})
        self.skipped_what = skipped_what
        self.files = list(files or [])
        self.limit: dict[str, Any] | None = None  # what `load_questions(limit=)` drew, as results record it

    @property
    def format(self) -> str:
        """The files' format, or their formats joined by "+" (as `Benchmark.format` names them)."""
        return Benchmark(files=self.files).format

    @property
    def file_sha256(self) -> str | dict[str, str] | None:
        """The sha256 of the one file read, or {file name: sha256} for a folder or glob."""
        if len(self.files) == 1:
            return self.files[0].sha256
        return {str(f.path): f.sha256 for f in self.files} or None

    def skipped_summary(self) -> str:
        """E.g. "3 questions that are not yes/no (factoid 1, list 1, summary 1)"; "" when none was skipped."""
        if not self.skipped:
            return ""
        kinds = ", ".join(f"{k} {v}" for k, v in self.skipped.items())
        return f"{sum(self.skipped.values())} {self.skipped_what or 'records'} ({kinds})"

    def files_summary(self) -> str:
        """Per-file counts, e.g. "golden7b.json 20, golden8b.json 21 (3 duplicates left out)"."""
        return ", ".join(f.describe() for f in self.files)


Prompt = Callable[[Record, str], Question]


@dataclass(frozen=True)
class TaskSpec:
    """How one benchmark is prompted and scored, and which file formats (biomamba.benchmarks) it reads."""

    name: str
    domain: str  # "biomedical" or "general": general tasks are the forgetting check
    summary: str
    formats: tuple[str, ...]
    prompt: Prompt
    metric: str = "mc"  # "mc" (acc, acc_norm), "mc2" (TruthfulQA MC2 mass), "loglik" (LAMBADA)
    description: str = ""  # lm-eval's description prefix (MMLU)
    answer_words: bool = False  # generation protocol extracts the option word (yes/no/maybe)
    keep: tuple[str, ...] = ()  # record subtypes the task scores (BioASQ: yesno); others are counted
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- prompts
# Each renders lm-eval 0.4's prompt for a parsed record (biomamba.benchmarks reads every format).


def lettered(options: list[str]) -> str:
    """The options one a line after their letters ("A. first"), as lettered exams and the letter protocol
    show them."""
    return "".join(f"{LETTERS[i]}. {opt}\n" for i, opt in enumerate(options))


def _needs_gold(rec: Record, key: str = "") -> int:
    """Evaluation needs the answer that an unlabelled test split (readable for decontamination) lacks."""
    if rec.gold is None:
        raise DataError(
            f"{rec.where}: missing field '{key}'" if key else f"{rec.where}: the record has no answer"
        )
    return rec.gold


def _question(task: str, rec: Record, context: str | list[str], choices: list[str], stem: str,
              options: list[str] | None = None, continuation: str | None = None) -> Question:  # fmt: skip
    return Question(task=task, qid=rec.id, where=rec.where, context=context, choices=choices,
                    gold=_needs_gold(rec), stem=stem, options=options or list(choices),
                    continuation=continuation)  # fmt: skip


def _medqa_prompt(n_options: int) -> Prompt:
    def prompt(rec: Record, task: str) -> Question:
        letters = list(LETTERS[:n_options])
        if rec.option_labels != letters:
            raise DataError(
                f"{rec.where}: 'options' must have keys {letters} for {task}, got {rec.option_labels}"
            )
        context = "Question: " + rec.question + "\n" + lettered(rec.options) + "Answer:"
        return _question(task, rec, context, letters, rec.question, rec.options)

    return prompt


def medmcqa_prompt(rec: Record, task: str) -> Question:
    context = "Question: " + rec.question + "\nChoices:\n" + lettered(rec.options) + "Answer:"
    return _question(task, rec, context, list("ABCD"), rec.question, rec.options)


def mmlu_prompt(rec: Record, task: str) -> Question:
    subject = task.removeprefix("mmlu_")
    if rec.subtype and rec.subtype != subject:
        raise DataError(f"{rec.where}: an MMLU {rec.subtype} question; task {task} reads {subject}")
    body = rec.question + "\n" + lettered(rec.options) + "Answer:"
    return _question(task, rec, body, list("ABCD"), rec.question, rec.options)


def pubmedqa_prompt(rec: Record, task: str) -> Question:
    _needs_gold(rec, "final_decision")
    stem = f"Abstract: {rec.passage}\nQuestion: {rec.question}"
    return _question(task, rec, stem + "\nAnswer:", rec.options, stem)


def bioasq_prompt(rec: Record, task: str) -> Question:
    stem = f"Context: {rec.passage}\nQuestion: {rec.question}"
    return _question(task, rec, stem + "\nAnswer:", rec.options, stem)


def _icl_stem(rec: Record) -> str:
    """llm-foundry renders ARC/PIQA queries as "Question: STEM\\n": the stem lm-eval's template wants."""
    return rec.question.strip().removeprefix("Question:").strip() if rec.subtype == "icl" else rec.question


def question_answer_prompt(rec: Record, task: str) -> Question:
    """ARC and PIQA: `Question: STEM\\nAnswer:` with the choice texts."""
    stem = _icl_stem(rec)
    return _question(task, rec, f"Question: {stem}\nAnswer:", rec.options, stem)


def openbookqa_prompt(rec: Record, task: str) -> Question:
    stem = rec.question.strip() if rec.subtype == "icl" else rec.question
    return _question(task, rec, stem, rec.options, stem)


def hellaswag_prompt(rec: Record, task: str) -> Question:
    if rec.subtype == "icl":
        query, choices = hellaswag_clean(rec.question), [hellaswag_clean(c) for c in rec.options]
    else:
        query, choices = rec.question, rec.options
    return _question(task, rec, query, choices, query)


def schema_prompt(rec: Record, task: str) -> Question:
    """WinoGrande: one context per option, the rest of the sentence as the shared continuation."""
    stem = rec.question or rec.continuation
    return _question(task, rec, rec.context_options, rec.context_options, stem, rec.options, rec.continuation)


def boolq_prompt(rec: Record, task: str) -> Question:
    passage, question = rec.passage, rec.question
    if rec.subtype == "icl":  # llm-foundry: "Passage: P\nQuestion: Q?"
        passage, _, question = rec.question.removeprefix("Passage: ").rpartition("\nQuestion: ")
        question = question.strip().removesuffix("?")
    stem = f"{passage}\nQuestion: {question}?"
    return _question(task, rec, stem + "\nAnswer:", ["no", "yes"], stem)


def copa_prompt(rec: Record, task: str) -> Question:
    """lm-eval's SuperGLUE COPA: premise without its period + because/therefore; choices lower-cased."""
    if rec.subtype == "icl":  # llm-foundry: "The man turned on the faucet, therefore"
        context = re.sub(r",?\s*(because|therefore)$", r" \1", rec.question.strip())
    else:
        context = rec.question.strip()[:-1] + " " + {"cause": "because", "effect": "therefore"}[rec.subtype]
    choices = [" " + c[0].lower() + c[1:] for c in rec.options]
    return _question(task, rec, context, choices, context, rec.options)


def lambada_prompt(rec: Record, task: str) -> Question:
    return _question(task, rec, rec.question, rec.options, rec.question)


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


def _truthfulqa_prompt(key: str) -> Prompt:
    def prompt(rec: Record, task: str) -> Question:
        choices, labels = truthfulqa_targets(rec.raw, key, rec.where)
        question = _question(
            task, rec, TRUTHFULQA_PROMPT + "\n\nQ: " + rec.question + "\nA:", choices, rec.question
        )
        question.gold = labels.index(1)
        question.labels = labels if key == "mc2_targets" else None
        return question

    return prompt


# ---------------------------------------------------------------------------------------------- registry

MMLU_MEDICAL = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
)
MMLU_FILE = re.compile(r"^(?P<subject>[a-z_]+?)_(?P<split>dev|val|test|train|auxiliary_train)$")


def _registry() -> dict[str, TaskSpec]:
    f = FAMILIES  # the formats each benchmark's files come in (biomamba.benchmarks, shared with decontam)
    specs = [
        TaskSpec("pubmedqa", "biomedical", "PubMedQA PQA-L (ori_pqal.json / test_set.json; hub exports)",
                 f["pubmedqa"], pubmedqa_prompt, answer_words=True),
        TaskSpec("pubmedqa_test", "biomedical",
                 "PubMedQA official 500-question test split (folder with test_ground_truth.json)",
                 ("pubmedqa",), pubmedqa_prompt, answer_words=True),
        TaskSpec("medqa_4options", "biomedical",
                 "MedQA (USMLE) 4 options, JSON lines (or GBaker's hub export)", f["medqa"],
                 _medqa_prompt(4)),
        TaskSpec("medqa_5options", "biomedical", "MedQA (USMLE) 5 options, JSON lines", f["medqa"],
                 _medqa_prompt(5)),
        TaskSpec("medmcqa", "biomedical", "MedMCQA dev.json (JSON lines, cop 1-based; hub export 0-based)",
                 f["medmcqa"], medmcqa_prompt),
        TaskSpec("bioasq_yesno", "biomedical",
                 "BioASQ Task B golden JSON (file, folder or glob), yes/no questions", f["bioasq"],
                 bioasq_prompt, answer_words=True, keep=("yesno",)),
        TaskSpec("arc_easy", "general", "ARC-Easy JSON lines (release, hub, llm-foundry)", f["arc"],
                 question_answer_prompt),
        TaskSpec("arc_challenge", "general", "ARC-Challenge JSON lines (release, hub, llm-foundry)", f["arc"],
                 question_answer_prompt),
        TaskSpec("openbookqa", "general", "OpenBookQA JSON lines (ARC format, hub, llm-foundry)",
                 f["openbookqa"], openbookqa_prompt),
        TaskSpec("hellaswag", "general", "HellaSwag JSON lines (release, hub, llm-foundry)", f["hellaswag"],
                 hellaswag_prompt),
        TaskSpec("piqa", "general", "PIQA JSON lines + <name>-labels.lst (hub, llm-foundry)", f["piqa"],
                 question_answer_prompt),
        TaskSpec("winogrande", "general", "WinoGrande JSON lines (release, hub, llm-foundry schema)",
                 f["winogrande"], schema_prompt),
        TaskSpec("boolq", "general", "BoolQ JSON lines (release, hub, llm-foundry)", f["boolq"], boolq_prompt,
                 answer_words=True),
        TaskSpec("copa", "general", "COPA JSON lines (SuperGLUE, llm-foundry)", f["copa"], copa_prompt),
        TaskSpec("lambada", "general", "LAMBADA JSON lines {text} (or llm-foundry {context, continuation})",
                 f["lambada"], lambada_prompt, metric="loglik"),
        TaskSpec("truthfulqa_mc1", "general", "TruthfulQA MC1 (mc_task.json)", f["truthfulqa"],
                 _truthfulqa_prompt("mc1_targets")),
        TaskSpec("truthfulqa_mc2", "general", "TruthfulQA MC2 (mc_task.json)", f["truthfulqa"],
                 _truthfulqa_prompt("mc2_targets"), metric="mc2"),
    ]  # fmt: skip
    for subject in MMLU_MEDICAL:
        words = subject.replace("_", " ")
        lead = f"The following are multiple choice questions (with answers) about {words}.\n\n"
        summary = f"MMLU {words}, headerless CSV {subject}_<split>.csv"
        specs.append(
            TaskSpec(f"mmlu_{subject}", "biomedical", summary, f["mmlu"], mmlu_prompt, description=lead)
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
    """A task name, its language tag, the local file(s) that hold its records, and a format if named."""

    task: str
    path: Path
    language: str = "en"
    raw: str | None = None  # the spec as given (keeps "hub:a/b" and glob patterns intact)
    format: str | None = None  # a biomamba.benchmarks format name; None: detected from the content
    more: tuple[str, ...] = ()  # further files, folders or globs read as the same task (de-duplicated by id)

    @property
    def key(self) -> str:
        """Results key: the task name, suffixed with the language when it is not English."""
        return self.task if self.language == "en" else f"{self.task}@{self.language}"


def parse_task_file(spec: str) -> TaskFile:
    """Parse `NAME[@LANG][:FORMAT]=PATH`; `x.fr.jsonl` is tagged `fr` when no tag is given."""
    if "=" not in spec:
        raise DataError(
            f"--task-file {spec!r}: expected NAME=PATH or NAME@LANG=PATH, e.g. pubmedqa=ori_pqal.json"
        )
    name, _, raw_path = spec.partition("=")
    name, _, fmt = name.strip().partition(":")
    name, _, language = name.partition("@")
    task = get_task(name)
    if fmt:
        from biomamba.benchmarks import get_format

        get_format(fmt)
        if fmt not in task.formats:
            raise DataError(
                f"--task-file {spec!r}: task {name} reads formats {', '.join(task.formats)}, not {fmt}"
            )
    raw_path = raw_path.strip()
    path = Path(raw_path).expanduser()
    if not language:
        language = "en" if hub.is_hub(raw_path) else detect_language(path)
    return TaskFile(name, path, language.lower(), raw=raw_path, format=fmt or None)


def group_task_files(task_files: Iterable[TaskFile]) -> list[TaskFile]:
    """Task files with the same key (task and language) become one task reading all their files.

    Results are keyed by task: two files of one task must be one task (every record read, duplicates by id
    left out and counted per file), never two runs where the second silently replaces the first.
    """
    grouped: dict[str, TaskFile] = {}
    for task_file in task_files:
        first = grouped.get(task_file.key)
        if first is None:
            grouped[task_file.key] = task_file
            continue
        if hub.is_hub(task_file.raw or "") or hub.is_hub(first.raw or "") or first.format != task_file.format:
            raise DataError(
                f"{task_file.key} given twice ({first.raw or first.path} and {task_file.raw or task_file.path}) "
                "with a hub copy or different formats: give one, or tag a translated copy NAME@LANG=PATH"
            )
        grouped[task_file.key] = replace(first, more=(*first.more, task_file.raw or str(task_file.path)))
    return list(grouped.values())


def detect_language(path: Path) -> str:
    """Language tag from a file name like `medqa.fr.jsonl` (the translator writes such names)."""
    for part in path.name.split(".")[1:-1]:
        if part.lower() in LANGUAGE_NAMES:
            return part.lower()
    return "en"


def _mmlu_files(task: str) -> Callable[[list[Path]], list[Path]]:
    """MMLU files are named `<subject>_<split>.csv`: keep the task's subject, refuse another subject."""
    subject = task.removeprefix("mmlu_")

    def select(paths: list[Path]) -> list[Path]:
        if len(paths) > 1:
            mine = [p for p in paths if _mmlu_subject(p) in (subject, None)]
            if not mine:
                raise DataError(f"{paths[0].parent}: no {subject}_<split>.csv among its files (task {task})")
            return mine
        named = _mmlu_subject(paths[0])
        if named not in (subject, None):
            raise DataError(
                f"{paths[0]}: is the MMLU {named} file (MMLU files are named <subject>_<split>.csv); "
                f"task {task} reads {subject}_<split>.csv"
            )
        return paths

    return select


def _mmlu_subject(path: Path) -> str | None:
    """The subject a CSV's name gives (`anatomy_test.csv` -> anatomy); None for other names and layouts."""
    if not path.name.lower().endswith((".csv", ".csv.gz")):
        return None
    match = MMLU_FILE.match(path.name.split(".")[0])
    return match.group("subject") if match else None


def _read(task_file: TaskFile, spec: TaskSpec) -> Benchmark:
    what = f"task '{spec.name}'"
    if spec.name == "pubmedqa_test":
        return _pubmedqa_test(task_file.path, task_file.format, what)
    subject = _mmlu_files(spec.name) if spec.name.startswith("mmlu_") else None

    def select(paths: list[Path]) -> list[Path]:
        """Several files: only those of the task file's language (a folder may hold translated copies)."""
        if len(paths) > 1:
            paths = [p for p in paths if detect_language(p) == task_file.language] or paths
        return subject(paths) if subject else paths

    source = task_file.raw if task_file.raw and not hub.is_hub(task_file.raw) else task_file.path
    sources = [str(source), *task_file.more]
    for one in sources:
        if not Path(one).expanduser().exists() and not glob.has_magic(one):
            raise DataError(f"{one}: task file for '{spec.name}' not found")
    return read_benchmark(sources, format=task_file.format, accept=spec.formats, what=what, select=select)


def _pubmedqa_test(path: Path, fmt: str | None, what: str) -> Benchmark:
    """The official 500: PMIDs and labels from `test_ground_truth.json`, contexts from test_set/ori_pqal.

    A record whose own final_decision disagrees with the ground truth is an error: it means mixed-up files.
    """
    from biomamba.benchmarks import io as bio

    truth, truth_path, truth_text = pubmedqa_ground_truth(path)
    source = pubmedqa_contexts_file(path)
    records = {r.id: r for r in iter_records(source, resolve_format(source, fmt, ("pubmedqa",), what))}
    chosen = []
    for pmid, label in truth.items():
        truth_where = f"{truth_path}:{bio.line_of(truth_text, chr(34) + pmid + chr(34))}"
        if pmid not in records:
            raise DataError(f"{truth_where}: PMID {pmid} of the test split is not in {source}")
        rec = records[pmid]
        own = rec.options[rec.gold] if rec.gold is not None else None
        if own is not None and own != label:
            raise DataError(f"{rec.where}: final_decision {own!r} disagrees with {truth_where} ({label!r})")
        if label not in rec.options:
            raise DataError(
                f"{truth_where}: field 'final_decision' is {label!r}, expected one of {rec.options}"
            )
        rec.gold = rec.options.index(label)
        chosen.append(rec)
    files = [SourceFile(p, "pubmedqa", file_sha256(p), n) for p, n in ((source, len(records)),
             (truth_path, len(truth)))]  # fmt: skip
    return Benchmark(chosen, files)


def load_questions(task_file: TaskFile, limit: int | None = None, seed: int = 0) -> QuestionList:
    """Read and check every record of a task file (or folder, or glob); duplicate ids in one file are made
    unique, never merged; an id an earlier file already had is left out and counted per file.

    Records the task leaves out by design (BioASQ's non-yes/no questions) are counted in the returned list's
    `skipped` and logged as a warning; the detected format and the files read are on the list too.
    `limit` keeps N questions drawn by the one `--limit` sampler (`biomamba.eval.sampling`: stratified by
    label, seeded, file order kept), never the first N (benchmark files are often sorted by label); what
    was drawn is on the list as `limit`.
    """
    spec = get_task(task_file.task)
    if hub.is_hub(task_file.raw or task_file.path):
        local = hub.materialize(task_file.task, task_file.raw or str(task_file.path))
        task_file = TaskFile(task_file.task, local, task_file.language, format=task_file.format)
    bench = _read(task_file, spec)
    skipped: Counter[str] = Counter()
    questions = QuestionList(
        files=bench.files, skipped_what="questions that are not yes/no" if spec.keep else ""
    )
    for rec in bench.records:
        if spec.keep and rec.subtype not in spec.keep:
            skipped[rec.subtype] += 1
            continue
        questions.append(spec.prompt(rec, spec.name))
    questions.skipped = dict(sorted(skipped.items()))
    _report(task_file, spec, questions)
    seen: Counter[str] = Counter()
    for question in questions:
        question.language = task_file.language
        seen[question.qid] += 1
        if seen[question.qid] > 1:
            question.qid = f"{question.qid}#{seen[question.qid]}"
    if limit:
        sample, drawn = stratified_sample(questions, limit, label_of, seed=seed)
        sampled = QuestionList(sample, questions.skipped, questions.skipped_what, questions.files)
        sampled.limit = drawn
        return sampled
    return questions


def _report(task_file: TaskFile, spec: TaskSpec, questions: QuestionList) -> None:
    """Say what was read (format, files), what was skipped; refuse an empty task."""
    skipped = questions.skipped_summary()
    if not questions:
        raise DataError(
            f"{task_file.path}: no {spec.name} questions found" + (f" (skipped {skipped})" if skipped else "")
        )
    log.info("%s: %s: format %s, %d questions", task_file.path, spec.name, questions.format, len(questions))
    if len(questions.files) > 1:
        log.warning(
            "%s: %s: %d questions from %d files: %s",
            task_file.raw or task_file.path, spec.name, len(questions), len(questions.files), questions.files_summary(),
        )  # fmt: skip
    if skipped:
        log.warning("%s: %s: skipped %s", task_file.path, spec.name, skipped)


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

"""eval stage: domain perplexity, biomedical and general benchmarks, lm-eval parity, fast scoring.

Python API (what a demo or notebook calls):

    from biomamba.models import load_model, load_tokenizer
    from biomamba.eval import evaluate, perplexity, write_results, label_balance, load_questions

    model, tok = load_model("runs/x/final"), load_tokenizer("runs/x/final")
    ppl = perplexity(model, corpus="runs/corpus", seq_len=1024)        # {domain: {"ppl", ...}}
    results = evaluate(model, tok, ["pubmedqa_test=../shared/data/pubmedqa",
                                    "medqa_4options=medqa/test.jsonl"],
                       protocol="loglikelihood")                         # or "letter", "generate"
    results["perplexity"] = ppl
    write_results("runs/x/eval/results.json", results)
    results["tasks"]["pubmedqa_test"]["metrics"]  # {"acc", "acc_ci", "acc_norm", "acc_norm_ci", "ece"}

    from biomamba.report import render_report
    render_report(["before.json", "after.json"], "runs/x/report")

- `run_eval(EvalConfig, *, task_files=(), model=None, tokenizer=None)` -> results dict: what `biomamba eval run`
  does with a recipe's `eval:` section (load, select tasks, score, perplexity, write `output`)
- `evaluate(model, tokenizer, task_files, *, protocol, shots, seeds, ...)` -> results dict (biomamba-results/1)
- `perplexity(model, *, corpus=None, texts=None, tokenizer=None, seq_len, stride, ...)` -> {domain: stats}
- `load_questions(TaskFile)`, `parse_task_file("NAME[@LANG][:FORMAT]=PATH")` (PATH: a file, folder or glob;
  formats from biomamba.benchmarks, detected when not named), `label_balance(questions)`, `TASKS`
- `write_results(path, results)`, `read_results(path)`, `compare_results(before, after)`
- `translate_task_file(...)` (biomamba.eval.translate), the lm-eval adapter (biomamba.eval.lm_eval_adapter)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biomamba.utils.lazy import lazy_exports

if TYPE_CHECKING:  # the public names: type checkers read them, `lazy_exports` imports them on first use
    from biomamba.eval.domain_perplexity import perplexity, stream_perplexity  # noqa: F401
    from biomamba.eval.results import compare_results, read_results, write_results  # noqa: F401
    from biomamba.eval.runner import evaluate, run_eval  # noqa: F401
    from biomamba.eval.tasks import TASKS, TaskFile, label_balance, load_questions, parse_task_file  # noqa: F401
    from biomamba.eval.translate import translate_task_file  # noqa: F401

__all__, __getattr__ = lazy_exports(__name__, __file__)

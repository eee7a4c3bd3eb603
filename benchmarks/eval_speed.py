"""Questions/s of biomamba's evaluator vs lm-evaluation-harness's HF backend, same model and questions.

    .venv/bin/python benchmarks/eval_speed.py --pubmedqa ../shared/data/pubmedqa --questions 60

Models are built here (no downloads): a small GPT-2 and a small biomamba Mamba2 with a BPE tokenizer
trained on the questions. Both harnesses score the same PubMedQA test questions (lm-eval's own pubmedqa
prompt template, 3 choices each) with the log-likelihood protocol; model loading is excluded from both
timings (lm-eval gets an already-built HFLM object). lm-eval is timed at its default batch size 1 and at
the same batch size as biomamba. "biomamba full" is biomamba with prefix sharing switched off (every
choice re-runs the prompt), to separate the prefix-sharing gain from everything else. Accuracy must agree
between harnesses (same work); the script fails otherwise.

`--tiny` runs a seconds-long version (used by tests/eval/test_benchmarks.py so the script cannot rot).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES = {
    "tiny": {
        "gpt2": dict(n_embd=32, n_layer=2, n_head=2),
        "mamba2": dict(d_model=32, n_layer=2, d_state=16, headdim=16),
    },
    "small": {
        "gpt2": dict(n_embd=256, n_layer=4, n_head=4),
        "mamba2": dict(d_model=256, n_layer=4, d_state=64, headdim=32),
    },
}


def build_models(folder: Path, texts: list[str], size: str, vocab: int) -> dict[str, Path]:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from biomamba.models import create_model, save_model

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(fast), n_positions=2048, bos_token_id=0, eos_token_id=0, **SIZES[size]["gpt2"]
        )
    )
    gpt2.save_pretrained(folder / "gpt2")
    fast.save_pretrained(folder / "gpt2")
    mamba = create_model({"vocab_size": len(fast), "chunk_size": 64, **SIZES[size]["mamba2"]}, seed=0)
    save_model(mamba, folder / "mamba2", tokenizer=fast)
    return {"gpt2": folder / "gpt2", "mamba2": folder / "mamba2"}


def lm_eval_task(folder: Path, questions, source: dict) -> str:
    from tests.eval.lmeval_tasks import write_lmeval_task

    records = [source[q.qid] for q in questions]  # bigbio's source schema is the PQA-L record itself
    return write_lmeval_task(folder, "pubmedqa", records)


def _instances(questions):
    from lm_eval.api.instance import Instance

    pairs = [req for q in questions for req in q.requests()]
    return [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(pairs)]


def time_requests(lm, questions) -> tuple[float, list[float]]:
    """Seconds for one `loglikelihood` call over every (context, choice) request (tokenization included)."""
    instances = _instances(questions)
    start = time.perf_counter()
    scores = lm.loglikelihood(instances, disable_tqdm=True)
    return time.perf_counter() - start, [s[0] for s in scores]


def time_end_to_end_biomamba(model_dir: Path, task_file, batch_size: int) -> tuple[float, float]:
    from biomamba.eval import evaluate
    from biomamba.models import load_model, load_tokenizer

    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    start = time.perf_counter()
    out = evaluate(model, tok, [task_file], batch_size=batch_size, bootstrap_resamples=100)
    return time.perf_counter() - start, out["tasks"]["pubmedqa"]["metrics"]["acc"]


def time_end_to_end_lm_eval(lm, task_dir: Path, name: str) -> tuple[float, float]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(task_dir), include_defaults=False, verbosity="ERROR")
    start = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=[name], task_manager=manager, verbosity="ERROR")
    return time.perf_counter() - start, out["results"][name]["acc,none"]


def run(
    pubmedqa: Path, n_questions: int, size: str, batch_size: int, vocab: int, families: list[str]
) -> dict:
    import numpy as np
    import torch
    from lm_eval.models.huggingface import HFLM

    from biomamba.eval.lm_eval_adapter import BiomambaLM
    from biomamba.eval.tasks import TaskFile, load_questions

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    folder = Path(tempfile.mkdtemp(prefix="eval_speed_"))
    source_file = pubmedqa / "test_set.json" if pubmedqa.is_dir() else pubmedqa
    source = json.loads(source_file.read_text())
    subset = dict(list(source.items())[:n_questions])
    (folder / "pubmedqa.json").write_text(json.dumps(subset))
    task_file = TaskFile("pubmedqa", folder / "pubmedqa.json")
    questions = load_questions(task_file)
    texts = [q.context for q in questions] + [" yes no maybe"] * 10
    dirs = build_models(folder, texts, size, vocab)
    name = lm_eval_task(folder / "tasks", questions, subset)
    rows = []
    for family in families:
        reference = HFLM(pretrained=str(dirs[family]), device="cpu", batch_size=1, dtype="float32")
        batched = HFLM(pretrained=str(dirs[family]), device="cpu", batch_size=batch_size, dtype="float32")
        ours = BiomambaLM(pretrained=str(dirs[family]), batch_size=batch_size)
        full = BiomambaLM(pretrained=str(dirs[family]), batch_size=batch_size, backend="full")
        timed = {
            "biomamba (prefix sharing)": time_requests(ours, questions),
            "biomamba, sharing off": time_requests(full, questions),
            "lm-eval HF bs1": time_requests(reference, questions),
            f"lm-eval HF bs{batch_size}": time_requests(batched, questions),
        }
        base = np.array(timed["lm-eval HF bs1"][1])
        for harness, (seconds, lls) in timed.items():
            gap = float(np.abs(np.array(lls) - base).max())
            if gap > 1e-3:
                raise SystemExit(f"{family}: {harness} log-likelihoods differ from lm-eval's by {gap}")
            rows.append(
                {
                    "family": family,
                    "scope": "model calls",
                    "harness": harness,
                    "seconds": seconds,
                    "qps": len(questions) / seconds,
                    "max_ll_gap": gap,
                }
            )
        e2e = {
            "biomamba evaluate()": time_end_to_end_biomamba(dirs[family], task_file, batch_size),
            f"lm-eval simple_evaluate bs{batch_size}": time_end_to_end_lm_eval(
                batched, folder / "tasks", name
            ),
        }
        accs = {k: round(v[1], 6) for k, v in e2e.items()}
        if len(set(accs.values())) != 1:
            raise SystemExit(f"{family}: harnesses disagree on accuracy: {accs}")
        for harness, (seconds, _) in e2e.items():
            rows.append(
                {
                    "family": family,
                    "scope": "end to end",
                    "harness": harness,
                    "seconds": seconds,
                    "qps": len(questions) / seconds,
                    "max_ll_gap": None,
                }
            )
    return {"questions": len(questions), "size": size, "batch_size": batch_size, "rows": rows}


def markdown(result: dict, command: str) -> str:
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"torch threads {os.environ.get('OMP_NUM_THREADS', '2')}, CPU only  ",
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}  ",
        f"Questions: {result['questions']} PubMedQA test questions (3 choices), model size `{result['size']}`, "
        f"batch size {result['batch_size']}",
        "",
        "| model | scope | harness | seconds | questions/s | biomamba speed-up | max abs Δ loglik vs lm-eval bs1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for family in dict.fromkeys(r["family"] for r in result["rows"]):
        for scope in ("model calls", "end to end"):
            rows = [r for r in result["rows"] if r["family"] == family and r["scope"] == scope]
            ours = rows[0]
            for r in rows:
                gap = "-" if r["max_ll_gap"] is None else f"{r['max_ll_gap']:.1e}"
                lines.append(
                    f"| {family} | {scope} | {r['harness']} | {r['seconds']:.2f} | {r['qps']:.2f} | "
                    f"{ours['qps'] / r['qps']:.2f}x | {gap} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pubmedqa", type=Path, default=ROOT.parent / "shared" / "data" / "pubmedqa")
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=2000)
    parser.add_argument("--families", default="gpt2,mamba2")
    parser.add_argument(
        "--tiny", action="store_true", help="seconds-long smoke run (fixture data, tiny models)"
    )
    parser.add_argument("--output", type=Path, help="append the markdown table to this file")
    args = parser.parse_args()
    if args.tiny:
        args.pubmedqa = ROOT / "tests" / "eval" / "fixtures" / "pubmedqa_ori_pqal.json"
        args.questions, args.size, args.vocab, args.batch_size = 4, "tiny", 300, 4
    result = run(
        args.pubmedqa, args.questions, args.size, args.batch_size, args.vocab, args.families.split(",")
    )
    table = markdown(result, "python " + " ".join(sys.argv))
    print(table)
    if args.output:
        with args.output.open("a", encoding="utf-8") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()

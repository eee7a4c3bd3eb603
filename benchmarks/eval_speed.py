"""Seconds of biomamba's evaluator vs lm-evaluation-harness's HF backend, same model, same requests.

    .venv/bin/python benchmarks/eval_speed.py --questions 60 --batch-sizes 1,4,16

Models are built here (no downloads): a small GPT-2 and a small biomamba Mamba2 with a BPE tokenizer
trained on the questions. Tasks, each in its own file layout and read by biomamba's reader: PubMedQA test
questions (real, 3 single-token answers), and the 30 real MMLU medical dev questions as MMLU, MedQA and
MedMCQA (answer letters: single tokens) and as ARC (lm-eval scores ARC on the answer TEXTS: the
multi-token-choice case). Both harnesses get the same (context, continuation) requests through lm-eval's
`loglikelihood` (biomamba via its lm-eval adapter, `BiomambaLM`), at the same batch size, tokenization
included and model loading excluded, in CPU seconds of this process, the fastest of `--repeats`
alternating runs; per-request log-likelihoods must agree (the script fails otherwise).

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


def build_models(
    folder: Path, texts: list[str], size: str, vocab: int, model_vocab: int = 0
) -> dict[str, Path]:
    """A BPE of `vocab` tokens trained on the texts; models whose embedding is padded to `model_vocab` rows
    (real models have 32k-50k: the LM head and log-softmax over it are part of the real cost)."""
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
            vocab_size=max(len(fast), model_vocab),
            n_positions=2048,
            bos_token_id=0,
            eos_token_id=0,
            **SIZES[size]["gpt2"],
        )
    )
    gpt2.save_pretrained(folder / "gpt2")
    fast.save_pretrained(folder / "gpt2")
    mamba = create_model(
        {"vocab_size": max(len(fast), model_vocab), "chunk_size": 64, **SIZES[size]["mamba2"]}, seed=0
    )
    save_model(mamba, folder / "mamba2", tokenizer=fast)
    return {"gpt2": folder / "gpt2", "mamba2": folder / "mamba2"}


def write_task_files(folder: Path, pubmedqa: Path, mmlu_dev: Path, n_pubmedqa: int) -> dict[str, Path]:
    """Real questions in each benchmark's own layout: PubMedQA test questions as they are, and the 30 real
    MMLU medical dev questions as MMLU CSV, MedQA JSON lines, MedMCQA `dev.json` and ARC JSON lines (the
    last one is the multi-token-choice case: lm-eval scores ARC on the answer texts)."""
    import csv

    from biomamba.eval.tasks import MMLU_MEDICAL  # the six medical subjects of the BioMistral benchmark

    source_file = pubmedqa / "test_set.json" if pubmedqa.is_dir() else pubmedqa
    source = json.loads(source_file.read_text())
    (folder / "pubmedqa.json").write_text(json.dumps(dict(list(source.items())[:n_pubmedqa])))
    rows = []
    for subject in MMLU_MEDICAL:
        path = mmlu_dev / f"{subject}_dev.csv"
        if path.is_file():
            rows += list(csv.reader(path.open(encoding="utf-8")))
    with (folder / "mmlu.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    medqa, medmcqa, arc = [], [], []
    for i, (question, *options, answer) in enumerate(rows):
        letters = "ABCD"
        medqa.append(
            {
                "question": question,
                "options": dict(zip(letters, options, strict=True)),
                "answer_idx": answer,
                "answer": options[letters.index(answer)],
                "meta_info": "step1",
            }
        )
        medmcqa.append(
            {
                "question": question,
                **{f"op{c}": o for c, o in zip("abcd", options, strict=True)},
                "cop": letters.index(answer) + 1,
                "id": f"m{i}",
                "exp": "",
                "subject_name": "Medicine",
                "topic_name": "",
                "choice_type": "single",
            }
        )
        arc.append(
            {
                "id": f"q{i}",
                "question": {
                    "stem": question,
                    "choices": [{"text": o, "label": c} for c, o in zip(letters, options, strict=True)],
                },
                "answerKey": answer,
            }
        )
    for name, records in (("medqa.jsonl", medqa), ("dev.json", medmcqa), ("arc.jsonl", arc)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return {
        "pubmedqa": folder / "pubmedqa.json",
        "mmlu_anatomy": folder / "mmlu.csv",
        "medqa_4options": folder / "medqa.jsonl",
        "medmcqa": folder / "dev.json",
        "arc_easy": folder / "arc.jsonl",
    }


def _instances(questions):
    from lm_eval.api.instance import Instance

    pairs = [req for q in questions for req in q.requests()]
    return [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(pairs)]


def time_requests(lm, questions) -> tuple[float, list[float]]:
    """CPU seconds of this process for one `loglikelihood` call over every (context, choice) request
    (tokenization included). CPU time, not wall time: on a shared machine the neighbours' jobs stretch
    wall time by whatever they run, while this process's own CPU time stays what its work costs (with
    one torch thread, nothing runs in parallel to be missed)."""
    instances = _instances(questions)
    start = time.process_time()
    scores = lm.loglikelihood(instances, disable_tqdm=True)
    return time.process_time() - start, [s[0] for s in scores]


def best_of(
    repeats: int, ours, theirs, questions
) -> tuple[tuple[float, list[float]], tuple[float, list[float]]]:
    """The fastest of `repeats` alternating timings of each harness (the same requests each time)."""
    mine, ref = [], []
    for _ in range(repeats):
        mine.append(time_requests(ours, questions))
        ref.append(time_requests(theirs, questions))
    return min(mine, key=lambda t: t[0]), min(ref, key=lambda t: t[0])


def run(
    pubmedqa: Path,
    n_questions: int,
    size: str,
    batch_sizes: list[int],
    vocab: int,
    families: list[str],
    mmlu_dev: Path | None = None,
    model_vocab: int = 0,
    repeats: int = 3,
) -> dict:
    """Per family, task and batch size: biomamba's and lm-eval's HF backend's seconds on the same requests."""
    import numpy as np
    import torch
    from lm_eval.models.huggingface import HFLM

    from biomamba.eval.lm_eval_adapter import BiomambaLM
    from biomamba.eval.tasks import TaskFile, load_questions

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    folder = Path(tempfile.mkdtemp(prefix="eval_speed_"))
    mmlu_dev = mmlu_dev or ROOT.parent / "shared" / "data" / "mcq" / "mmlu_dev"
    files = write_task_files(folder, pubmedqa, mmlu_dev, n_questions)
    tasks = {}
    for task, path in files.items():
        if path.stat().st_size:
            tasks[task] = load_questions(TaskFile(task, path))
    texts = [q.stem + " " + " ".join(q.options) for qs in tasks.values() for q in qs]
    dirs = build_models(folder, texts + [q.context for q in tasks["pubmedqa"]], size, vocab, model_vocab)
    rows = []
    for family in families:
        for batch_size in batch_sizes:
            ours = BiomambaLM(pretrained=str(dirs[family]), batch_size=batch_size)
            theirs = HFLM(pretrained=str(dirs[family]), device="cpu", batch_size=batch_size, dtype="float32")
            for task, questions in tasks.items():
                (mine, ll_mine), (ref, ll_ref) = best_of(repeats, ours, theirs, questions)
                gap = float(np.abs(np.array(ll_mine) - np.array(ll_ref)).max())
                if gap > 1e-3:
                    raise SystemExit(f"{family} {task} bs{batch_size}: log-likelihoods differ by {gap}")
                rows.append(
                    {
                        "family": family,
                        "task": task,
                        "batch_size": batch_size,
                        "questions": len(questions),
                        "choices": sum(len(q.requests()) for q in questions),
                        "biomamba_s": mine,
                        "lm_eval_s": ref,
                        "speedup": ref / mine,
                        "max_ll_gap": gap,
                    }
                )
    return {"size": size, "model_vocab": model_vocab, "repeats": repeats, "rows": rows}


def markdown(result: dict, command: str) -> str:
    from biomamba.utils.markdown import markdown_table

    lines = [
        f"Command: `{command}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"torch threads {os.environ.get('OMP_NUM_THREADS', '2')}, CPU only  ",
        f"Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, model size `{result['size']}`, "
        f"embedding rows {result.get('model_vocab') or 'as the tokenizer'}, "
        f"CPU seconds, best of {result.get('repeats', 1)} alternating runs",
        "",
    ]
    head = ["model", "task", "questions (requests)", "batch", "biomamba CPU s", "lm-eval HF CPU s"]
    head += ["biomamba speed-up", "max abs Δ loglik"]
    cells = [[r["family"], r["task"], f"{r['questions']} ({r['choices']})", r["batch_size"], f"{r['biomamba_s']:.2f}",
              f"{r['lm_eval_s']:.2f}", f"**{r['speedup']:.2f}x**", f"{r['max_ll_gap']:.1e}"] for r in result["rows"]]  # fmt: skip
    return "\n".join(lines + markdown_table(head, cells)) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pubmedqa", type=Path, default=ROOT.parent / "shared" / "data" / "pubmedqa")
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--mmlu-dev", type=Path, default=ROOT.parent / "shared" / "data" / "mcq" / "mmlu_dev")
    parser.add_argument("--vocab", type=int, default=2000)
    parser.add_argument(
        "--model-vocab", type=int, default=32000, help="embedding rows (Llama/Mistral: 32000)"
    )
    parser.add_argument("--families", default="gpt2,mamba2")
    parser.add_argument(
        "--tiny", action="store_true", help="seconds-long smoke run (fixture data, tiny models)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timings per harness; the fastest counts")
    parser.add_argument("--output", type=Path, help="append the markdown table to this file")
    args = parser.parse_args()
    if args.tiny:
        args.pubmedqa = ROOT / "tests" / "eval" / "fixtures" / "pubmedqa_ori_pqal.json"
        args.questions, args.size, args.vocab, args.batch_sizes, args.model_vocab = 4, "tiny", 300, "4", 0
        args.repeats = 1
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    result = run(
        args.pubmedqa,
        args.questions,
        args.size,
        batch_sizes,
        args.vocab,
        args.families.split(","),
        args.mmlu_dev,
        args.model_vocab,
        args.repeats,
    )
    table = markdown(result, "python " + " ".join(sys.argv))
    print(table)
    if args.output:
        with args.output.open("a", encoding="utf-8") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()

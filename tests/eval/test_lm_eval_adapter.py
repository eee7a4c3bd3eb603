"""The lm-eval adapter (`--model biomamba`) against lm-eval's own HF backend, request by request."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("lm_eval")

CONTEXTS = [
    ("Question: Does aspirin reduce the risk of myocardial infarction?\nAnswer:", " yes"),
    ("Question: Does aspirin reduce the risk of myocardial infarction?\nAnswer:", " no"),
    ("Plants make food by", " photosynthesis using energy from the sun."),
    ("", "The hyoid bone"),
]
DOCS = ["Abstract: We studied 120 patients with type 2 diabetes treated with metformin. " * 3]


def _instances(kind: str, args_list: list[tuple]):
    from lm_eval.api.instance import Instance

    return [Instance(request_type=kind, doc={}, arguments=args, idx=i) for i, args in enumerate(args_list)]


@pytest.mark.parametrize("family", ["gpt2", "mamba2"])
def test_adapter_matches_hf_backend(family, tiny_dir, request):
    from lm_eval.models.huggingface import HFLM

    import biomamba.eval.lm_eval_adapter as adapter

    model_dir = request.getfixturevalue("tiny_mamba2_dir") if family == "mamba2" else tiny_dir / family
    ours = adapter.BiomambaLM(pretrained=str(model_dir), batch_size=2)
    ref = HFLM(pretrained=str(model_dir), device="cpu", batch_size=2, dtype="float32")
    assert ours.prefix_token_id == ref.prefix_token_id
    got = ours.loglikelihood(_instances("loglikelihood", CONTEXTS))
    want = ref.loglikelihood(_instances("loglikelihood", CONTEXTS))
    for (ll, greedy), (ll_ref, greedy_ref) in zip(got, want, strict=True):
        assert ll == pytest.approx(ll_ref, abs=1e-4)
        assert greedy == greedy_ref
    rolling = ours.loglikelihood_rolling(_instances("loglikelihood_rolling", [(d,) for d in DOCS]))
    rolling_ref = ref.loglikelihood_rolling(_instances("loglikelihood_rolling", [(d,) for d in DOCS]))
    assert rolling == pytest.approx(rolling_ref, abs=1e-3)
    gen_args = [("Question: Which organ produces insulin?\nAnswer:", {"until": ["\n"], "max_gen_toks": 5})]
    text = ours.generate_until(_instances("generate_until", gen_args))
    text_ref = ref.generate_until(_instances("generate_until", gen_args))
    assert text == text_ref


def test_cli_wrapper_runs_an_lm_eval_task(tiny_dir, tmp_path, monkeypatch):
    """`python -m biomamba.eval.lm_eval_cli --model biomamba ...`, in-process: a results file appears.

    lm-eval's CLI indexes its ~10k bundled task files first (10+ s); the test skips that indexing only.
    """
    import lm_eval.tasks

    original = lm_eval.tasks.TaskManager.__init__

    def only_included(self, *args, **kwargs):
        kwargs["include_defaults"] = False
        original(self, *args, **kwargs)

    monkeypatch.setattr(lm_eval.tasks.TaskManager, "__init__", only_included)
    from tests.eval.conftest import FIXTURES
    from tests.eval.lmeval_tasks import lmeval_records, write_lmeval_task

    from biomamba.eval.lm_eval_cli import main

    records = lmeval_records("arc_easy", FIXTURES / "arc_easy.jsonl")
    name = write_lmeval_task(tmp_path / "tasks", "arc_easy", records)
    argv = ["run", "--model", "biomamba", "--model_args", f"pretrained={tiny_dir / 'gpt2'}", "--tasks", name]
    argv += ["--include_path", str(tmp_path / "tasks"), "--device", "cpu"]
    argv += ["--output_path", str(tmp_path / "out")]
    main(argv)
    files = list((tmp_path / "out").rglob("results_*.json"))
    assert files, "lm-eval wrote no results"
    results = json.loads(files[0].read_text())["results"][name]
    assert 0.0 <= results["acc,none"] <= 1.0

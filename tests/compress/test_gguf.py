"""GGUF export checked by its consumer: llama.cpp (llama-cpp-python) loads each family's file, and its
logits, tokenization and greedy text match the PyTorch model the file was written from."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.factories.models import mamba2_randomized
from tests.factories.scripts import benchmark_script
from typer.testing import CliRunner

from biomamba.cli.main import build_app
from biomamba.compress.gguf_export import export_gguf, tokenizer_kind
from biomamba.models import load_model, load_tokenizer, save_model
from biomamba.models.gguf import GgufModel, GgufTokenizer, open_gguf

from .helpers import TEXT, build_model, exit_and_error

gguf = pytest.importorskip("gguf")
llama_cpp = pytest.importorskip("llama_cpp")

FAMILIES = ["gpt2", "llama", "mistral", "mamba2"]
# in-distribution text: what the tiny models were trained on, >= 100 next-token predictions and within
# GPT-2's 128 positions
EVAL_TEXT = " ".join(dict.fromkeys(TEXT))


def _tiny(family: str, vocab: int, hidden: int = 64):
    """Rows of 64 values, so Q8_0 (blocks of 32) really quantizes every matrix."""
    if family == "mamba2":
        shape = {"d_model": hidden, "headdim": 16, "d_state": 16, "ngroups": 1, "chunk_size": 16}
        return mamba2_randomized(vocab_size=vocab, **shape)
    return build_model(family, vocab=vocab, layers=2, hidden=hidden)


def _train(model, tokenizer, steps: int = 60):
    """A few steps on the helper corpus: a trained model has the peaked predictions quantization is
    judged on (a random model's near-ties say nothing about Q8_0)."""
    ids = torch.tensor([tokenizer(EVAL_TEXT)["input_ids"]])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        logits = model(input_ids=ids).logits[0, :-1, : len(tokenizer)]
        loss = torch.nn.functional.cross_entropy(logits, ids[0, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module", params=FAMILIES)
def trained(request, tokenizer, tmp_path_factory):
    """(family, model dir, model, q8_0 and f16 files written by `biomamba export --format gguf`)."""
    torch.manual_seed(0)
    model = _train(_tiny(request.param, len(tokenizer)), tokenizer)
    root = tmp_path_factory.mktemp(request.param)
    src = save_model(model, root / "model", tokenizer)
    out = root / "release"
    args = ["export", str(src), "-o", str(out), "--format", "gguf", "--quant", "f16", "--quant", "q8_0"]
    args += ["--name", f"tiny-{request.param}"]
    result = CliRunner().invoke(build_app(), args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    files = {q: out / "gguf" / f"tiny-{request.param}-{q.upper()}.gguf" for q in ("f16", "q8_0")}
    return request.param, src, model, files, out


def _torch_logits(model, ids: list[int], vocab: int) -> np.ndarray:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, :, :vocab].float().numpy()


def _gguf_logits(path: Path, ids: list[int], vocab: int) -> np.ndarray:
    with closing(GgufModel(path, logits_all=True)) as model:
        return model.logits(ids)[:, :vocab]


def test_f16_logits_match_pytorch(trained, tokenizer) -> None:
    family, _, model, files, _ = trained
    ids = tokenizer(EVAL_TEXT)["input_ids"]
    ref = _torch_logits(model, ids, len(tokenizer))
    got = _gguf_logits(files["f16"], ids, len(tokenizer))
    assert got.shape == ref.shape
    assert (got.argmax(-1) == ref.argmax(-1)).all(), f"{family}: f16 top-1 differs"
    scale = np.abs(ref).max()
    assert np.abs(got - ref).max() <= 0.02 * scale, f"{family}: f16 logits error {np.abs(got - ref).max()}"


def test_q8_0_top1_agreement(trained, tokenizer) -> None:
    family, _, model, files, _ = trained
    reader = gguf.GGUFReader(str(files["q8_0"]))
    assert any(t.tensor_type == gguf.GGMLQuantizationType.Q8_0 for t in reader.tensors)
    ids = tokenizer(EVAL_TEXT)["input_ids"]
    ref = _torch_logits(model, ids, len(tokenizer)).argmax(-1)
    got = _gguf_logits(files["q8_0"], ids, len(tokenizer)).argmax(-1)
    assert len(ids) >= 100
    assert (got == ref).mean() >= 0.99, f"{family}: q8_0 top-1 agreement {(got == ref).mean():.3f}"


def test_tokenizer_inside_the_file_encodes_like_the_original(trained, tokenizer) -> None:
    _, _, _, files, _ = trained
    with closing(GgufModel(files["f16"])) as model:
        tok = GgufTokenizer(model)
        for text in [EVAL_TEXT, "β-blockers: 5 mg/kg, twice daily!\n  (n=12)", "<eos>aspirin"]:
            assert tok(text, add_special_tokens=False)["input_ids"] == tokenizer(text)["input_ids"], text
        ids = tokenizer(EVAL_TEXT)["input_ids"]
        assert tok.decode(ids) == tokenizer.decode(ids)
        assert tok.eos_token_id == tokenizer.eos_token_id and len(tok) == len(tokenizer)


def test_generate_greedy_text_matches_pytorch(trained) -> None:
    _, src, _, files, _ = trained
    prompt = ["generate", "-n", "12", "--temperature", "0", "the patient was given"]
    runner = CliRunner()
    want = runner.invoke(build_app(), [prompt[0], str(src), *prompt[1:]], catch_exceptions=False)
    got = runner.invoke(build_app(), [prompt[0], str(files["q8_0"]), *prompt[1:]], catch_exceptions=False)
    assert want.exit_code == 0 and got.exit_code == 0, got.output
    assert got.stdout == want.stdout and got.stdout.strip()


def test_release_card_points_to_the_gguf_files(trained) -> None:
    family, _, _, files, out = trained
    card = (out / "README.md").read_text()
    assert f"gguf/tiny-{family}-Q8_0.gguf" in card and (out / "config.json").is_file()
    assert files["q8_0"].stat().st_size < files["f16"].stat().st_size


def test_q4_k_m_is_quantized_by_llama_cpp(tmp_path: Path, tokenizer) -> None:
    """256-wide rows, so llama.cpp's Q4_K (super-blocks of 256) applies instead of its fallbacks."""
    model = _tiny("gpt2", len(tokenizer), hidden=256)
    path = export_gguf(model, tokenizer, tmp_path / "m-Q4_K_M.gguf", "q4_k_m")
    types = {t.tensor_type for t in gguf.GGUFReader(str(path)).tensors}
    assert gguf.GGMLQuantizationType.Q4_K in types
    assert [p.name for p in tmp_path.iterdir()] == ["m-Q4_K_M.gguf"]  # no f16 intermediate left behind
    with closing(GgufModel(path)) as runner:
        assert np.isfinite(runner.prefill(tokenizer(EVAL_TEXT)["input_ids"][:20])).all()


def test_bad_requests_exit_2_with_one_line(tmp_path: Path, tokenizer, capsys) -> None:
    from biomamba.models.quantized import QUANT_FILE

    src = save_model(_tiny("llama", len(tokenizer), hidden=16), tmp_path / "m", tokenizer)
    out = str(tmp_path / "r")
    code, err = exit_and_error(["export", str(src), "-o", out, "--quant", "q8_0"], capsys)
    assert code == 2 and "--format gguf" in err and len(err.strip().splitlines()) == 1
    code, err = exit_and_error(["export", str(src), "-o", out, "--format", "gguf", "--quant", "q5"], capsys)
    assert code == 2 and "q4_k_m" in err
    (src / QUANT_FILE).write_text('{"method": "int8", "weights": "model.safetensors", "group_size": 32}')
    code, err = exit_and_error(["export", str(src), "-o", out, "--format", "gguf"], capsys)
    assert code == 2 and "unquantized" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
    truncated = tmp_path / "x.gguf"
    truncated.write_bytes(b"GGUF\x03\x00")
    code, err = exit_and_error(["generate", str(truncated), "hi"], capsys)
    assert code == 2 and str(truncated) in err and "Traceback" not in err


def llama_style_tokenizer(vocab_size: int = 300):
    """Llama 2's tokenizer.json layout: `▁` normalizer, BPE with byte fallback, <0xNN> tokens at 3..258,
    `<s>` prepended by the post-processor (trained here on the helper text)."""
    import json

    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>"]
    norm = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    probe = Tokenizer(models.BPE(unk_token="<unk>"))
    probe.normalizer = norm
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 256, special_tokens=specials, show_progress=False)
    probe.train_from_iterator(TEXT, trainer)
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
        for m in json.loads(probe.to_str())["model"]["merges"]
    ]
    vocab = {t: i for i, t in enumerate(specials + [f"<0x{b:02X}>" for b in range(256)])}
    for token, _ in sorted(probe.get_vocab().items(), key=lambda kv: kv[1]):
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    )
    tok.normalizer = norm
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_llama_sentencepiece_style_tokenizer_and_logits(tmp_path: Path) -> None:
    """The Llama-2/Mistral tokenizer layout goes in as `llama` (scores, byte tokens, BOS added)."""
    tokenizer = llama_style_tokenizer()
    assert tokenizer_kind(tokenizer) == "llama"
    model = _train(_tiny("llama", len(tokenizer)), tokenizer)
    path = export_gguf(model, tokenizer, tmp_path / "spm-F16.gguf", "f16")
    with closing(GgufModel(path, logits_all=True, n_ctx=512)) as runner:  # needs more than 128 positions
        tok = GgufTokenizer(runner)
        for text in [EVAL_TEXT, "β-blockers: 5 mg/kg (n=12)"]:
            assert tok(text)["input_ids"] == tokenizer(text)["input_ids"], text  # BOS included
        ids = tokenizer(EVAL_TEXT)["input_ids"]
        assert tok.decode(ids, skip_special_tokens=True) == tokenizer.decode(ids, skip_special_tokens=True)
        ref = _torch_logits(model, ids, len(tokenizer))
        assert (runner.logits(ids)[:, : len(tokenizer)].argmax(-1) == ref.argmax(-1)).all()


def test_gguf_decode_benchmark_runs(capsys) -> None:
    """The benchmark script runs (tiny, no child processes), so it cannot rot; no speed is asserted."""
    module = benchmark_script("gguf_decode")
    result = module.main(["--tiny", "--families", "llama", "--no-process-peak"])
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"fp32", "int8", "gguf-q8_0", "gguf-q4_k_m"}
    assert rows["gguf-q8_0"]["kernel"] == "llama.cpp ggml" and rows["int8"]["kernel"] == "torchao"
    assert rows["gguf-q4_k_m"]["file_bytes"] < rows["gguf-q8_0"]["file_bytes"] < rows["fp32"]["file_bytes"]
    assert "| llama | gguf-q4_k_m |" in capsys.readouterr().out


def test_serve_answers_from_the_gguf_file_like_from_the_model_dir(trained) -> None:
    """`make_server(..., engine=make_engine(..., GgufDecoder))`: the same greedy completion over HTTP as the
    PyTorch engine, through the same continuous-batching engine."""
    from tests.serve.helpers import serving

    from biomamba.serve.config import ServeConfig
    from biomamba.serve.server import make_engine

    _, src, _, files, _ = trained
    body = {"prompt": "the patient was given", "max_tokens": 8, "temperature": 0}
    answers = []
    config = ServeConfig(port=0)
    for model, tokenizer, decoder in [(load_model(src), load_tokenizer(src), None), open_gguf(files["f16"])]:
        engine = make_engine(model, tokenizer, config, decoder)
        with serving(model, tokenizer, config, model_name="tiny", engine=engine) as (_, client):
            reply = client.post("/v1/completions", json=body)
            assert reply.status_code == 200, reply.text
            answers.append(reply.json()["choices"][0]["text"])
    assert answers[0] == answers[1] and answers[0]

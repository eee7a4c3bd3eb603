"""Tokenizer training (byte-level BPE in the transformers format), fertility report, CLI."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from tests.factories.corpora import write_jsonl, write_texts
from tests.factories.scripts import invoke_cli

from biomamba.config.recipe import load_section
from biomamba.errors import DataError, RecipeError
from biomamba.tokenizer import fertility_report, train_tokenizer
from biomamba.tokenizer.config import TokenizerConfig

BIO = "thrombocytopenia hepatocellular carcinoma methotrexate pharmacokinetics randomized patients cohort".split()
GEN = "the city river music school game shop news weather team season album".split()


def _texts(words: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(30)) for _ in range(count)]


def test_trained_bpe_round_trips_and_reloads_with_autotokenizer(tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "tok"
    tok = train_tokenizer(_texts(BIO + GEN, 200, 0), vocab_size=500, output_dir=out)
    assert (out / "tokenizer.json").is_file() and not list(tmp_path.glob(".tok*"))
    loaded = AutoTokenizer.from_pretrained(out)
    assert len(loaded) == len(tok) <= 500
    assert loaded.eos_token == "<|endoftext|>" and loaded.eos_token_id == tok.eos_token_id
    text = "Café naïve 5 µg/kg βblocker 東京 thrombocytopenia"  # byte-level: nothing is unknown
    ids = loaded(text, add_special_tokens=False)["input_ids"]
    assert loaded.decode(ids) == text
    # a frequent word merges
    assert len(loaded(" thrombocytopenia", add_special_tokens=False)["input_ids"]) <= 2


def test_train_from_files_jsonl_and_text(tmp_path):
    jsonl = write_jsonl(tmp_path / "a.jsonl", [{"body": t} for t in _texts(BIO, 50, 1)])
    plain = tmp_path / "b.txt"
    plain.write_text("\n".join(_texts(GEN, 50, 2)))
    tok = train_tokenizer(files=[jsonl, plain], text_field="body", vocab_size=400)
    assert len(tok(" hepatocellular", add_special_tokens=False)["input_ids"]) <= 2
    assert len(tok(" weather", add_special_tokens=False)["input_ids"]) <= 2


def test_empty_or_missing_training_input_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no training text"):
        train_tokenizer([], vocab_size=300)
    with pytest.raises(DataError, match="nope.txt: tokenizer training file not found"):
        train_tokenizer(files=[tmp_path / "nope.txt"], vocab_size=300)


def test_fertility_report_prefers_the_domain_tokenizer(tmp_path):
    bio = train_tokenizer(_texts(BIO, 300, 3), vocab_size=400)
    gen = train_tokenizer(_texts(GEN, 300, 4), vocab_size=400)
    report = fertility_report({"bio": bio, "general": gen}, {"pubmed": _texts(BIO, 20, 5), "c4": _texts(GEN, 20, 6)},
                              terms=["thrombocytopenia", "weather"])  # fmt: skip
    rows = report.rows
    assert rows["bio"]["pubmed"]["tokens_per_word"] < rows["general"]["pubmed"]["tokens_per_word"]
    assert rows["general"]["c4"]["tokens_per_word"] < rows["bio"]["c4"]["tokens_per_word"]
    assert rows["bio"]["pubmed"]["words"] == 20 * 30
    assert "".join(report.terms["thrombocytopenia"]["general"]).strip() == "thrombocytopenia"
    markdown = report.markdown()
    assert markdown.splitlines()[0] == "| tokenizer | vocab | pubmed tokens/word | c4 tokens/word |"
    assert f"| bio | {len(bio)} | {rows['bio']['pubmed']['tokens_per_word']:.3f} |" in markdown
    assert "| thrombocytopenia | 1: thrombocytopenia |" in markdown


def test_cli_train_and_fertility(tmp_path):
    data = write_texts(tmp_path / "pubmed.jsonl", _texts(BIO, 120, 7), id_prefix="")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "t", "tokenizer": {"vocab_size": 350},
                                      "data": {"sources": {"pubmed": [{"type": "jsonl", "path": str(data)}]},
                                               "ratios": {"pubmed": 1.0}, "heldout_fraction": 0.2}}))  # fmt: skip
    out = tmp_path / "tok"
    result = invoke_cli(["tokenizer", "train", recipe, "--output-dir", out])
    assert result.exit_code == 0, result.output
    assert (out / "tokenizer.json").is_file()
    table = tmp_path / "fertility.md"
    result = invoke_cli(
        ["tokenizer", "fertility", "--recipe", recipe, "--tokenizer", f"bio={out}", "--output", table]
    )
    assert result.exit_code == 0, result.output
    assert table.read_text().startswith("| tokenizer | vocab | pubmed tokens/word |")


def test_tokenizer_recipe_validation():
    with pytest.raises(RecipeError, match="tokenizer.vocab_size"):
        load_section({"tokenizer": {"vocab_size": 10}}, "tokenizer", TokenizerConfig)
    with pytest.raises(RecipeError, match="must be listed in special_tokens"):
        load_section({"tokenizer": {"eos_token": "</s>"}}, "tokenizer", TokenizerConfig)


def _floor_version() -> str:
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    spec = next(d for d in pyproject["project"]["dependencies"] if d.startswith("transformers"))
    return re.search(r">=\s*([\d.]+)", spec).group(1)


def test_saved_tokenizer_names_a_class_transformers_4_has(tmp_path):
    out = tmp_path / "tok"
    train_tokenizer(_texts(BIO + GEN, 100, 0), vocab_size=300, output_dir=out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # not 5.x's "TokenizersBackend"


def test_saved_tokenizer_loads_under_the_lowest_declared_transformers(tmp_path):
    """Load with the pyproject floor of transformers, installed aside (it needs its own tokenizers and hub):

    pip install --target /tmp/tf-floor --no-deps transformers==<floor> tokenizers==0.20.3 huggingface_hub==0.26.5
    BIOMAMBA_TRANSFORMERS_FLOOR=/tmp/tf-floor pytest tests/tokenizer -k lowest
    """
    floor_dir = os.environ.get("BIOMAMBA_TRANSFORMERS_FLOOR")
    if not floor_dir:
        pytest.skip("set BIOMAMBA_TRANSFORMERS_FLOOR to a pip --target folder holding the floor transformers")
    out = tmp_path / "tok"
    tok = train_tokenizer(_texts(BIO + GEN, 100, 0), vocab_size=300, output_dir=out)
    text = "Café 5 µg/kg thrombocytopenia"
    probe = ("import json, sys, transformers\nfrom transformers import AutoTokenizer\n"
             "t = AutoTokenizer.from_pretrained(sys.argv[1])\n"
             "print(json.dumps([transformers.__version__, t.eos_token_id, t.pad_token_id,"
             " t(sys.argv[2], add_special_tokens=False)['input_ids']]))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": floor_dir}
    proc = subprocess.run([sys.executable, "-c", probe, str(out), text], capture_output=True, text=True, env=env,
                          cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    version, eos, pad, ids = json.loads(proc.stdout.strip().splitlines()[-1])
    floor = _floor_version()
    assert version == floor or version == f"{floor}.0"  # ">=4.46" allows 4.46.0
    assert (eos, pad) == (tok.eos_token_id, tok.pad_token_id)
    assert ids == tok(text, add_special_tokens=False)["input_ids"]

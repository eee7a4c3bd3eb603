"""`biomamba.train.train` and `biomamba train`: recipes end to end, twice in one process, clear failures."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
import yaml
from tests.factories.corpora import logged_losses
from tests.factories.models import MAMBA2_SHAPE
from tests.factories.recipes import train_recipe

from biomamba.config import check_recipe
from biomamba.errors import BiomambaError, DataError, RecipeError
from biomamba.train import train
from biomamba.train.checkpoint import latest_checkpoint

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
MAMBA = MAMBA2_SHAPE
RUN = {
    "max_steps": 4,
    "lr": 5e-3,
    "schedule": "wsd",
    "warmup_ratio": 0.25,
    "eval_every": 2,
    "eval_tokens": 128,
}


def _recipe(corpus: Path, **train_changes: object) -> dict:
    return train_recipe(corpus, name="t", **{**RUN, **train_changes})


def test_pretrain_then_continue_pretraining_in_one_process(tmp_path: Path, corpus: Path) -> None:
    from biomamba.models import family, load_model

    used_seq_idx: list[bool] = []
    base = train(
        _recipe(corpus, architecture=MAMBA, ema_decay=0.5),
        output_dir=tmp_path / "base",
        callbacks=[lambda trainer, record: used_seq_idx.append(trainer.loss_fn.use_seq_idx)],
    )
    assert base.stopped == "completed" and base.steps == 4 and base.tokens == 4 * 4 * 32
    assert used_seq_idx == [True] * 4  # Mamba2 gets document boundaries
    assert {"heldout/pubmed/ppl", "heldout/c4/ppl", "loss"} <= set(base.metrics)
    assert family(load_model(base.final_dir)) == "mamba2" and base.ema_dir is not None
    summary = json.loads((tmp_path / "base" / "summary.json").read_text())
    assert summary["final_dir"] == str(base.final_dir)

    cpt = train(
        _recipe(corpus, base_model=str(base.final_dir), lr=1e-3, max_steps=2), output_dir=tmp_path / "cpt"
    )
    assert cpt.steps == 2
    # it starts from the trained base, not from scratch
    assert logged_losses(tmp_path / "cpt")[0] < logged_losses(tmp_path / "base")[0]
    saved = yaml.safe_load((cpt.last_checkpoint / "recipe.yaml").read_text())
    assert saved["train"]["base_model"] == str(base.final_dir) and saved["train"]["seed"] == 0


def test_model_section_builds_a_fresh_mamba2(tmp_path: Path, corpus: Path) -> None:
    recipe = _recipe(corpus, max_steps=1, eval_every=None, label_smoothing=0.1)
    recipe["model"] = {"preset": "tiny", "vocab_size": 70}  # padded to 80 rows
    seen: list[tuple[float, int | None]] = []
    result = train(
        recipe,
        output_dir=tmp_path / "run",
        callbacks=[
            lambda trainer, record: seen.append((trainer.loss_fn.label_smoothing, trainer.loss_fn.vocab_size))
        ],
    )
    assert result.steps == 1 and (result.final_dir / "model.safetensors").is_file()
    assert seen == [(0.1, 70)]  # the smoothing is spread over the 70 real ids, not the 80 rows


def test_hub_base_model_offline_is_one_clear_line(tmp_path: Path, corpus: Path) -> None:
    with pytest.raises(
        RecipeError, match=r"train.base_model: 'state-spaces/mamba2-130m' is not available offline"
    ):
        train(_recipe(corpus, base_model="state-spaces/mamba2-130m"), output_dir=tmp_path / "run")
    with pytest.raises(RecipeError, match="checkpoint directory not found"):
        train(_recipe(corpus, base_model=str(tmp_path / "missing")), output_dir=tmp_path / "run")


@pytest.mark.parametrize(
    "name",
    ["biomamba-130m", "biomamba-370m", "biomamba-780m", "biomamba-1.3b", "biomamba-2.7b", "biomistral-7b"],
)
def test_shipped_cpt_recipes_validate_and_fail_clearly_offline(
    tmp_path: Path, corpus: Path, name: str
) -> None:
    path = RECIPES / f"{name}.yaml"
    assert {"train", "model", "data"} <= set(check_recipe(path))
    recipe = yaml.safe_load(path.read_text())
    assert recipe["train"]["data_source"]
    with pytest.raises(
        RecipeError, match=r"model.name_or_path: '[^']+' is not available offline.*huggingface-cli download"
    ):
        train(path, output_dir=tmp_path / "run", overrides={"train.corpus": str(corpus)})


def test_biomamba_recipes_carry_the_published_hyperparameters() -> None:
    published = {
        "lr": 5e-6, "schedule": "wsd", "warmup_ratio": 0.1, "stable_ratio": 0.65, "min_lr_ratio": 0.1,
        "betas": [0.9, 0.95], "weight_decay": 0.1, "clip_grad_norm": 1.0, "layer_lr_decay": 0.95,
        "ema_decay": 0.999, "seq_len": 1024,
    }  # fmt: skip
    for size in ("130m", "370m", "780m", "1.3b", "2.7b"):
        t = yaml.safe_load((RECIPES / f"biomamba-{size}.yaml").read_text())["train"]
        assert {key: t[key] for key in published} == published


def test_biomedlm_recipe_is_a_2_7b_gpt2_from_scratch() -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    sections = check_recipe(RECIPES / "biomedlm-2.7b.yaml")
    arch = dict(sections["train"].architecture)
    assert sections["train"].lr == 1.6e-4 and sections["train"].seq_len == 1024
    config = AutoConfig.for_model(arch.pop("model_type"), **arch)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    assert 2.55e9 < params < 2.75e9  # 2.59B with tied embeddings: the published '2.7B' counts the head too
    assert yaml.safe_load((RECIPES / "biomistral-7b.yaml").read_text())["train"]["distributed"] == "fsdp"


def test_existing_run_needs_resume(tmp_path: Path, corpus: Path) -> None:
    recipe = _recipe(corpus, architecture=MAMBA, max_steps=1, eval_every=None)
    train(recipe, output_dir=tmp_path / "run")
    with pytest.raises(BiomambaError, match="already holds checkpoints.*--resume"):
        train(recipe, output_dir=tmp_path / "run")
    again = train(recipe, output_dir=tmp_path / "run", resume=True, overrides={"train.max_steps": 2})
    assert again.steps == 2


def test_corpus_defaults_to_the_data_build_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    recipe = {"name": "bio", "data": {"sources": {"pubmed": [{"type": "text", "path": "x"}]}}, "train": {
        "architecture": MAMBA, "max_steps": 1, "progress": False}}  # fmt: skip
    with pytest.raises(DataError, match=r"runs/bio/corpus/manifest.json: corpus manifest not found"):
        train(recipe)


def test_cli_trains_stops_on_sigint_and_reports_bad_keys_in_one_line(
    tmp_path: Path, corpus: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from biomamba.cli.main import run

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(_recipe(corpus, architecture=MAMBA, eval_every=None)))
    with pytest.raises(SystemExit) as done:
        run(["train", str(path), "--output-dir", str(tmp_path / "run"), "--max-steps", "2", "--no-progress"])
    assert done.value.code == 0
    assert "completed: step 2" in capsys.readouterr().out

    # Ctrl-C (a real SIGINT to this process) during step 3 of a resumed run: like SIGTERM, the step finishes,
    # a checkpoint is saved at it, and the command exits 128 + 2
    from biomamba.train.trainer import Trainer

    step = Trainer._train_step

    def interrupted_step(self: Trainer) -> object:
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return step(self)

    monkeypatch.setattr(Trainer, "_train_step", interrupted_step)
    before = signal.getsignal(signal.SIGINT)
    argv = ["train", str(path), "--output-dir", str(tmp_path / "run"), "--max-steps", "6", "--no-progress"]
    with pytest.raises(SystemExit) as done:
        run([*argv, "--resume"])
    assert done.value.code == 128 + signal.SIGINT
    assert "signal:SIGINT: step 3" in capsys.readouterr().out
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "step-00000003"
    assert signal.getsignal(signal.SIGINT) is before  # the caller's Ctrl-C handler is back
    with pytest.raises(SystemExit) as done:
        run(["train", str(path), "--set", "train.lr_warmup=3"])
    assert done.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {path}: train.lr_warmup: unknown key"


def test_a_train_tokenizer_that_does_not_exist_is_an_error_not_skipped(tmp_path: Path, corpus: Path) -> None:
    missing = tmp_path / "tokenizr"  # a typo
    with pytest.raises(RecipeError, match=rf"train.tokenizer: {missing}: no such model directory"):
        train(_recipe(corpus, architecture=MAMBA, tokenizer=str(missing)), output_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()

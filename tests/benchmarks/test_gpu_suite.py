"""benchmarks/gpu_suite.py at its tiny size on CPU: every section runs (or says why not), and the JSON and
markdown it writes for BENCHMARKS.md come out whole, so the one device call cannot fail on a code path."""

from __future__ import annotations

import json

import pytest
from tests.factories.scripts import benchmark_script


@pytest.fixture
def suite(monkeypatch):
    module = benchmark_script("gpu_suite")
    # every measured target counts as missed, so the profile path runs whatever this machine's timings are
    monkeypatch.setattr(
        module, "TARGETS", {k: (float("inf"), text) for k, (_, text) in module.TARGETS.items()}
    )
    return module


def test_gpu_suite_tiny_on_cpu_writes_every_section(suite, tmp_path, capsys):
    results = suite.main(["--tiny", "--device", "cpu", "--out", str(tmp_path), "--budget-s", "600"])
    on_disk = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert on_disk["sections"].keys() == results["sections"].keys()
    sections = on_disk["sections"]

    (parity,) = sections["parity"]
    assert parity["status"] == "skipped" and "no CUDA" in parity["reason"]
    train = {r["impl"]: r for r in sections["train tiny"]}
    assert list(train) == suite.TRAIN_IMPLS
    for impl in ("biomamba-fla", "biomamba-triton", "mamba-ssm"):
        assert train[impl]["status"] == "skipped" and "no CUDA" in train[impl]["reason"]
    assert train["biomamba-compile"]["status"] == "skipped"
    ours, theirs = train["biomamba"], train["transformers"]
    assert ours["status"] == theirs["status"] == "ok" and ours["tokens_per_s"] > 0
    assert abs(ours["loss"] - theirs["loss"]) < 1e-4  # the same random weights on both sides
    assert ours["flops_per_token"] > 6 * ours["params"]  # the SSD term is counted

    trainers = {r["model"]: r for r in sections["trainer"]}
    assert trainers["mamba2-tiny"]["kernels"] == "torch" and trainers["mamba2-tiny"]["trainer_vs_bare"] > 0
    assert trainers["gpt2-tiny"]["biomamba_vs_transformers"] > 0
    (decode,) = sections["decode"]
    assert [r["batch"] for r in decode["rows"]] == [1, 2]
    assert all(r["same_tokens_fraction"] == 1.0 for r in decode["rows"])
    (quant,) = sections["quantized decode"]
    assert {"bf16", "int8", "int4"} <= {r["variant"] for r in quant["rows"]}

    measured = [t for t in on_disk["targets"] if t["value"] is not None]
    assert {t["target"] for t in measured} == {"trainer_vs_bare", "gpt2_vs_transformers"}
    assert [t["target"] for t in on_disk["targets"] if t["value"] is None] == ["fastest_vs_reference"]
    profiles = {r["target"]: r for r in sections["profiles"]}
    assert profiles.keys() == {"trainer_vs_bare", "gpt2_vs_transformers"}
    assert all(p["status"] == "ok" and p["top"] and p["top"][0]["ms"] > 0 for p in profiles.values())

    markdown = (tmp_path / "gpu_suite.md").read_text()
    for heading in ("**Training step, tiny**", "**Trainers**", "**Greedy decoding**", "**Quantized decoding**",
                    "**Targets**", "**Profile for trainer_vs_bare**"):  # fmt: skip
        assert heading in markdown
    assert "skipped: mamba-ssm: no CUDA" in markdown and markdown in capsys.readouterr().out


def test_a_row_past_the_budget_is_kept_with_its_reason(suite, tmp_path):
    results = suite.main(["--tiny", "--device", "cpu", "--out", str(tmp_path), "--budget-s", "0"])
    rows = [r for rows in results["sections"].values() for r in rows]
    assert rows and all(r["status"] == "skipped" and r["reason"].startswith("time budget") for r in rows)
    assert "time budget" in (tmp_path / "gpu_suite.md").read_text()


def test_carried_wheels_never_replace_what_the_device_has(suite, tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "pydantic-2.14.4-py3-none-any.whl").write_bytes(b"")  # installed here: not reinstalled
    assert suite.install_wheels(wheels, tmp_path / "site") == []
    assert not (tmp_path / "site").exists()

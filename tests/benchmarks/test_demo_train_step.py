"""benchmarks/demo_train_step.py at a tiny size: each setting runs in its own process and the table is whole."""

from __future__ import annotations

import argparse

from tests.factories.scripts import benchmark_script


def test_demo_train_step_measures_each_setting_in_its_own_process(monkeypatch):
    module = benchmark_script("demo_train_step")
    two = {name: module.SETTINGS[name] for name in (module.BASELINE, "2 threads, passive (the demo)")}
    monkeypatch.setattr(module, "SETTINGS", two)
    args = argparse.Namespace(rounds=1, steps=1, warmup=0, batch=1, seq_len=16)
    rows = {0: module.measure(0, args), 1: module.measure(1, args)}  # one spinning process alongside
    assert all(rows[busy].keys() == two.keys() and min(rows[busy].values()) > 0 for busy in rows)
    table = module.markdown(rows)
    assert table.count("\n") == 1 + 2 * len(two) and "| 0 | 1 thread, recompute (before) |" in table
    assert "**1.00x**" in table  # the baseline against itself

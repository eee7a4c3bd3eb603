"""Benchmark formats, one home: every benchmark file in the tree is read here (below data, eval and finetune).

    from biomamba.benchmarks import read_benchmark, detect_format, FORMATS

    bench = read_benchmark("golden/", accept=["bioasq"])     # a file, a folder or a glob
    bench.format, bench.files                                # detected format; per-file sha256 and counts
    for record in bench.records:                             # biomamba.benchmarks.record.Record
        record.where, record.question, record.options, record.gold, record.texts()

- `FORMATS` / `get_format(name)`: the registry (layout, content signature, parser, free-text fields, sample)
- `detect_format(path)`, `read_benchmark(spec, format=, accept=, report=)`, `iter_raw`, `iter_records`
- `map_text(format, raw, fn)`, `render` / `write_benchmark(path, format, raws)`: rewrite or write a file
  in a format's own layout (translation, the demo's synthetic benchmarks)
- `Record`: one item as the file states it; eval renders prompts from it (biomamba.eval.tasks), finetune
  makes training examples (biomamba.finetune.records), decontamination indexes `Record.texts()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biomamba.utils.lazy import lazy_exports

if TYPE_CHECKING:  # the public names: type checkers read them, `lazy_exports` imports them on first use
    from biomamba.benchmarks.record import Record  # noqa: F401
    from biomamba.benchmarks.registry import (  # noqa: F401
        FORMATS,
        Benchmark,
        SourceFile,
        detect_format,
        expand_paths,
        get_format,
        iter_raw,
        iter_records,
        map_text,
        read_benchmark,
        render,
        resolve_format,
        write_benchmark,
    )
    from biomamba.benchmarks.spec import Format  # noqa: F401

__all__, __getattr__ = lazy_exports(__name__, __file__)

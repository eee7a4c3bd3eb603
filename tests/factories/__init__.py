"""One home for what the tests build: tiny tokenizers (`tokenizers`), tiny models of every family and model
directories (`models`), tiny corpora in the shard and JSON-lines layouts (`corpora`) and benchmark files in
every published format (`benchmarks`). Everything is made in-process, nothing is downloaded; tests/conftest.py
exposes the common ones as fixtures, and the stage folders' conftest/helpers pick their sizes from here.
"""

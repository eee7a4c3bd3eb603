"""The `biomamba` command line: a thin layer that mounts each stage's own commands."""

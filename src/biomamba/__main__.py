from biomamba.cli.main import run

run()

"""Child process for the resume / signal / torchrun tests: `python run_tiny.py '<json>'`.

JSON keys: recipe (dict), output_dir, resume (bool), sleep (seconds per step, so a test can kill it mid-run),
stage ("train", the default, or "finetune": the recipe is a fine-tuning one, run by biomamba.finetune);
or `jobs`, a list of such objects run one after the other in the same process (one torchrun launch, one
process group, several runs: the start-up is paid once). The exit status is that of the last run.
"""

from __future__ import annotations

import json
import sys
import time

from biomamba.train import train


def run(args: dict) -> object:
    if args.get("stage") == "finetune":
        from biomamba.finetune.run import finetune

        finetune(args["recipe"], output_dir=args["output_dir"], resume=args.get("resume", False), log=print)
        return None
    pause = float(args.get("sleep", 0.0))

    def slow_down(trainer: object, record: dict) -> None:
        if pause:
            time.sleep(pause)

    summary = train(
        args["recipe"], output_dir=args["output_dir"], resume=args.get("resume", False), callbacks=[slow_down]
    )
    print("SUMMARY " + json.dumps(summary.to_json()), flush=True)
    return summary


def main() -> None:
    args = json.loads(sys.argv[1])
    for job in args.get("jobs", [args]):
        summary = run(job)
    sys.exit(
        0
        if summary is None or summary.stopped == "completed"
        else 128 + (15 if summary.stopped.endswith("SIGTERM") else 2)
    )


if __name__ == "__main__":
    main()

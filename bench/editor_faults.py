"""Fault injection at scale: 200 commands while editor processes are SIGKILLed at every step
(receive, agent run, commit, push, result send) and restarted. Prints the counts.

8 environments side by side (so the redelivery waits after a kill overlap), 25 commands each,
one at a time per environment; about a quarter of the commands see a kill. Real editor
processes, moto SQS, local bare git remotes, the real Claude Code CLI against the Messages API
stand-in's demo script.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.editor.faults import run_faults
from webordinary.devkit.aws import start_moto
from webordinary.devkit.messages_api import MessagesAPI


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lanes", type=int, default=8, help="environments side by side")
    parser.add_argument("--per-lane", type=int, default=25, help="commands per environment")
    parser.add_argument("--share", type=float, default=0.25, help="share of commands killed")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    moto = start_moto()
    api = MessagesAPI(demo=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
            report = run_faults(Path(tmp), moto, api, lanes=args.lanes,
                                per_lane=args.per_lane, share=args.share, seed=args.seed)
    finally:
        api.stop()
        moto.stop()
    print("\n".join(report.lines()))
    print("verdict: " + ("every command answered once, nothing lost, no needless agent run"
                         if report.ok else "FAILED"))
    if report.lost or report.over_needed:
        print(f"lost: {report.lost}\nmore runs than needed: {report.over_needed}")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()

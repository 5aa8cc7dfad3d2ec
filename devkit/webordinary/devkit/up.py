"""`./dev up`: arguments and the port check first, before anything heavy is even imported.

A taken port is reported within a second of the command, with nothing started; only then are
the stand-ins and components loaded and started (webordinary.devkit.local).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from webordinary.devkit import ports

ROOT = Path(__file__).resolve().parents[3]
SENDER = "you@example.com"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./dev up",
        description="The whole Webordinary loop on this machine, all on 127.0.0.1.")
    parser.add_argument("--state", type=Path, default=ROOT / ".local",
                        help="folder for volumes, repositories, mailbox and logs")
    parser.add_argument("--port-base", type=int, default=None, metavar="N",
                        help="public ports at N+1 (Kubernetes API), N+25 (SMTP), N+80 "
                             "(previews); 0 picks free ones")
    parser.add_argument("--kube-port", type=int, default=None)
    parser.add_argument("--smtp-port", type=int, default=None)
    parser.add_argument("--ingress-port", type=int, default=None)
    parser.add_argument("--sender", default=SENDER)
    parser.add_argument("--send", help="send this instruction as an email once all is up")
    parser.add_argument("--once", action="store_true",
                        help="with --send: exit after the reply and preview check (0 = ok); "
                             "the last line printed is the JSON result")
    parser.add_argument("--timeout", type=float, default=240.0)
    args = parser.parse_args(argv)
    args.ports = ports.plan(args.port_base, {
        "kube": args.kube_port, "smtp": args.smtp_port, "ingress": args.ingress_port})
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    problems = ports.taken(args.ports)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if args.once:
            print(json.dumps({"ok": False, "error": problems[0]}), flush=True)
        sys.exit(2)
    from webordinary.devkit.local import start

    sys.exit(start(args))


if __name__ == "__main__":
    main()

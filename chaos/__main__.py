"""``python -m chaos``: one bounded chaos run; exit 1 on any violation."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys

from .harness import Options, run


def parse(argv: list[str] | None = None) -> tuple[Options, bool]:
    parser = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Run broker, collectors and agents as processes; SIGKILL and restart "
        "collectors and the broker at random; check every event is accounted for.",
    )
    defaults = Options()
    parser.add_argument("--duration", type=float, default=defaults.duration, help="seconds")
    parser.add_argument("--seed", type=int, help="random seed (default: a random one, printed)")
    parser.add_argument("--collectors", type=int, default=defaults.collectors)
    parser.add_argument("--subscribers", type=int, default=defaults.subscribers)
    parser.add_argument(
        "--rate", type=int, default=defaults.rate, help="events a second per collector"
    )
    parser.add_argument(
        "--interval", type=float, default=defaults.interval, help="mean seconds between kills"
    )
    parser.add_argument(
        "--broker-share",
        type=float,
        default=defaults.broker_share,
        help="share of kills aimed at the broker",
    )
    parser.add_argument(
        "--broker-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra broker argument (repeatable): --broker-arg=--max-outbound-bytes=65536",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    parser.add_argument("--json", action="store_true", help="end with the summary as JSON")
    args = parser.parse_args(argv)
    if args.collectors < 1 or args.subscribers < 1:
        parser.error("at least one collector and one subscriber")
    return Options(
        duration=args.duration,
        seed=args.seed if args.seed is not None else random.randrange(1 << 32),
        collectors=args.collectors,
        subscribers=args.subscribers,
        rate=args.rate,
        interval=args.interval,
        broker_share=args.broker_share,
        broker_args=tuple(args.broker_arg),
        keep_logs=args.keep_logs,
    ), args.json


def main(argv: list[str] | None = None) -> int:
    options, as_json = parse(argv)
    print(f"chaos: seed {options.seed}, {options.duration:g} s", flush=True)
    summary = asyncio.run(run(options))
    print(summary.line(), flush=True)
    if as_json:
        print(summary.as_json(), flush=True)
    return 1 if summary.violations else 0


if __name__ == "__main__":
    sys.exit(main())

"""``eventbus check-config FILE``: validate a broker config file; explain a decision."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from .. import errors
from .._backend import filter_covers, topic_matches, validate_filter
from ..acl import Grant, Policy, PrincipalRule, default_policy
from ..broker import BrokerConfig, load_config
from ._exit import ExitCode


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "check-config",
        help="validate a broker config file",
        description="Check FILE ([broker] settings and the policy) as the broker would at "
        "start, and say what it configures; an error names the line. With --explain, say "
        "which rule lets PRINCIPAL publish to and subscribe to TOPIC, or that none does.",
    )
    parser.add_argument("file", metavar="FILE")
    parser.add_argument(
        "--explain",
        nargs=2,
        metavar=("PRINCIPAL", "TOPIC"),
        help="TOPIC is a topic name (publish) or a filter (subscribe only)",
    )
    parser.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    prog = "eventbus check-config"
    try:
        config = load_config(args.file)
    except errors.ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    policy = config.policy or default_policy()
    if args.explain:
        principal, topic = args.explain
        try:
            rule = policy.rule(principal)
        except KeyError:
            print(
                f"{prog}: principal {principal!r} is not defined in {args.file} "
                f"(rule set {policy.name!r}); it defines: {', '.join(policy.principals())}",
                file=sys.stderr,
            )
            return ExitCode.FAILED
        try:
            validate_filter(
                topic, max_bytes=config.max_topic_bytes, max_levels=config.max_topic_levels
            )
        except errors.InvalidTopic as exc:
            print(f"{prog}: {exc}", file=sys.stderr)
            return ExitCode.FAILED
        print(_explain(policy, rule, topic))
        return ExitCode.OK
    print(_summary(args.file, config, policy))
    return ExitCode.OK


def _summary(path: str, config: BrokerConfig, policy: Policy) -> str:
    defaults = BrokerConfig()
    changed = [
        f"{field.name} = {getattr(config, field.name)!r}"
        for field in dataclasses.fields(BrokerConfig)
        # The policy is summed up below; an inherited socket is never in a file.
        if field.name not in ("policy", "listen_fd")
        and getattr(config, field.name) != getattr(defaults, field.name)
    ]
    lines = [f"{path}: ok"]
    lines.append("broker: " + ("; ".join(changed) if changed else "all defaults"))
    source = "the embedded default policy" if config.policy is None else f"rule set {policy.name!r}"
    lines.append(f"policy: {source}, {len(policy.principals())} principal(s)")
    lines.extend(f"  {policy.rule(name).describe()}" for name in policy.principals())
    return "\n".join(lines)


def _explain(policy: Policy, rule: PrincipalRule, topic: str) -> str:
    name = rule.name
    where = f"principal {name!r} (rule set {policy.name!r})"
    lines = [f"{where}, bound to {rule.binding.describe()}"]
    wildcard = any(level in ("+", "#") for level in topic.split("."))
    # The decision is the grant's, as the broker makes it; the rules say why.
    grant = Grant(name, rule.publish, rule.subscribe, rule.admin, policy.name)
    if wildcard:
        lines.append(f"publish {topic}: not applicable: a filter with wildcards is not a topic")
    elif topic.startswith("$"):
        lines.append(f"publish {topic}: refused: '$' topics are published by the broker only")
    elif not grant.may_publish(topic):
        rules = ", ".join(repr(f) for f in rule.publish) or "none"
        lines.append(f"publish {topic}: refused: no publish rule matches (rules: {rules})")
    else:
        allowing = [f for f in rule.publish if topic_matches(f, topic)]
        lines.append(f"publish {topic}: allowed by publish rule {allowing[0]!r}")
    covering = [f for f in rule.subscribe if filter_covers(f, topic)]
    if grant.may_subscribe(topic) and covering:
        lines.append(f"subscribe {topic}: allowed by subscribe rule {covering[0]!r}")
    else:
        rules = ", ".join(repr(f) for f in rule.subscribe) or "none"
        lines.append(
            f"subscribe {topic}: refused: no subscribe rule covers every topic it matches "
            f"(rules: {rules})"
        )
    lines.append(f"admin: {'yes' if rule.admin else 'no'}")
    return "\n".join(lines)

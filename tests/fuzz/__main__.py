"""The long fuzz run, and the replay of one recorded request.

    python -m tests.fuzz --minutes 30 --seed 7 --json fuzz.json
    python -m tests.fuzz --replay METHOD:BASE64

Exit status 1 on any INTERNAL or UNKNOWN answer or failed end check (the summary names them).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import sys
import time
from dataclasses import asdict
from typing import Any

from google.protobuf import message_factory, text_format

from tests.fuzz.campaign import run
from tests.fuzz.runner import BAD_CODES, Finding, Fuzzer, Stats, invoke
from tests.fuzz.target import ServerThread


def summary(stats: Stats, seconds: float) -> str:
    """The run's figures as a few aligned lines."""
    lines = [
        f"duration          {seconds:.0f} s",
        f"requests          {stats.requests} ({stats.raw_requests} raw bytes)",
        f"executions        {len(stats.executions)} created",
        "codes             " + ", ".join(f"{code} {n}" for code, n in stats.codes.most_common()),
        f"rss (KiB)         before {stats.rss.get('before')}, after {stats.rss.get('after')}, "
        f"peak {stats.rss.get('peak')}",
        f"tasks             before {stats.tasks.get('before')}, after {stats.tasks.get('after')}",
        f"slowest call      {stats.slowest[0]:.2f} s ({stats.slowest[1]})",
        "per method (top codes):",
    ]
    for method, codes in sorted(stats.per_method.items(), key=lambda kv: -sum(kv[1].values())):
        lines.append(f"  {method:<64} " + ", ".join(f"{c} {n}" for c, n in codes.most_common(4)))
    lines.append("end checks:")
    lines.extend(f"  {name:<32} {result}" for name, result in stats.checks.items())
    if stats.hangs:
        lines.append(f"unary calls past their deadline: {len(stats.hangs)}")
        lines.extend(f"  {h.replay[:300]}" for h in stats.hangs[:10])
    lines.append(f"INTERNAL/UNKNOWN or death: {len(stats.findings)} (grouped, with the shortest replay of each)")
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for finding in stats.findings:
        groups.setdefault((finding.method, finding.code, finding.details[:100]), []).append(finding)
    for (method, code, details), found in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:40]:
        lines.append(f"  {len(found)}x {method} {code}: {details}")
        lines.append(f"    replay: {min((f.replay for f in found), key=len)[:2000]}")
    return "\n".join(lines)


def to_json(stats: Stats, seconds: float) -> dict[str, Any]:
    """The run's figures as JSON."""
    return {
        "seconds": round(seconds, 1),
        "requests": stats.requests,
        "raw_requests": stats.raw_requests,
        "executions": len(stats.executions),
        "codes": dict(stats.codes),
        "per_method": {m: dict(c) for m, c in stats.per_method.items()},
        "rss_kib": stats.rss,
        "tasks": stats.tasks,
        "checks": stats.checks,
        "findings": [asdict(f) for f in stats.findings],
        "hangs": [asdict(h) for h in stats.hangs],
        "failed": stats.failed,
    }


def fuzz(minutes: float, seed: int, json_path: str | None) -> int:
    """A time-bounded run against a fresh server; prints the summary, returns the exit status."""
    target = ServerThread().start()
    fuzzer = Fuzzer(target)
    started = time.monotonic()
    try:
        fuzzer.baseline()
        try:
            run(fuzzer, seed=seed, seconds=minutes * 60)
        except RuntimeError as error:  # the server died: the finding is recorded
            print(f"stopped: {error}", file=sys.stderr)
        stats = fuzzer.finish()
    finally:
        fuzzer.close()
        target.stop()
    seconds = time.monotonic() - started
    print(summary(stats, seconds))
    if json_path:
        with open(json_path, "w") as out:
            json.dump(to_json(stats, seconds), out, indent=1)
    return 1 if stats.failed else 0


def replay(recorded: str) -> int:
    """Sends one recorded request to a fresh server and prints the answer."""
    key, _, encoded = recorded.rpartition(":")
    target = ServerThread().start()
    fuzzer = Fuzzer(target)
    try:
        method = next((m for m in fuzzer.methods if m.key == key), None)
        if method is None:
            print(f"no method {key!r}; methods: {', '.join(m.key for m in fuzzer.methods)}", file=sys.stderr)
            return 2
        payloads = [base64.b64decode(p) for p in encoded.split(",")]
        cls = message_factory.GetMessageClass(method.input)
        for payload in payloads:
            try:
                shown = text_format.MessageToString(cls.FromString(payload), as_utf8=True)[:2000]
            except Exception as error:  # the point: bytes that do not decode
                shown = f"(not a valid {method.input.full_name}: {error})"
            print(f"request ({len(payload)} bytes):\n{shown}")
        code, details, answers = invoke(fuzzer.channels[method.port], method, payloads)
        print(f"answer: {code.name}: {details}")
        out = message_factory.GetMessageClass(method.output)
        for answer in answers[:5]:
            print(text_format.MessageToString(out.FromString(answer), as_utf8=True)[:2000])
        return 1 if code in BAD_CODES or not target.alive else 0
    finally:
        fuzzer.close()
        target.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to fuzz (default 30)")
    parser.add_argument("--seed", type=int, default=7, help="the run's seed (default 7)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--replay", metavar="METHOD:BASE64", help="resend one recorded request and print the answer")
    parser.add_argument("--log-level", default="ERROR", help="the server's log level (default ERROR)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    if args.replay:
        return replay(args.replay)
    return fuzz(args.minutes, args.seed, args.json)


if __name__ == "__main__":
    sys.exit(main())

"""Replay the Azure LLM arrival trace against a live conveyor server, scaled to what it serves.

    conveyor serve e2e-smollm2 --port 3000 &
    .venv/bin/python -m bench.trace_replay --model e2e-smollm2 --port 3000 \\
        --minutes 5 --rate 0.02 --tokens 0.05 --max-output-tokens 64

``--rate`` multiplies the arrival rate (0.02: the trace's ~5.5 requests/s become one every
~9 s), ``--tokens`` the prompt and output sizes (capped by ``--max-prompt-tokens`` and
``--max-output-tokens``, e.g. the deployment's ``serving.max_new_tokens``). Prints every
outcome counted (ok, HTTP statuses, error events, no answer: they add up to the requests
sent) and p50/p99 time to first token and end-to-end latency per minute of the replay.
A malformed trace line stops it before anything is sent, with ``file:line``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from testbed.azure_trace import WHOLE_HOUR, TraceError, read_trace, scale
from testbed.trace_replay import TraceTarget, outcomes, replay_live
from testbed.trace_report import minute_rows, render_minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=WHOLE_HOUR)
    parser.add_argument("--model", required=True, help="The deployment (OpenAI `model`).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--api-key", default=os.environ.get("CONVEYOR_API_KEY"))
    parser.add_argument("--minutes", type=float, default=None, help="Trace minutes to replay.")
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--tokens", type=float, default=1.0)
    parser.add_argument("--max-prompt-tokens", type=int, default=None)
    parser.add_argument("--max-output-tokens", type=int, default=None)
    parser.add_argument("--slo-ttft", type=float, default=3.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    try:
        limit = args.minutes * 60 if args.minutes else None
        arrivals = read_trace(args.trace, limit_seconds=limit)
    except TraceError as exc:
        sys.exit(f"error: {exc}")
    scaled = scale(
        arrivals,
        rate=args.rate,
        tokens=args.tokens,
        max_prompt_tokens=args.max_prompt_tokens,
        max_output_tokens=args.max_output_tokens,
    )
    target = TraceTarget(args.host, args.port, args.model, args.api_key)
    sent = replay_live(target, scaled)
    counted = outcomes(sent)
    rows = minute_rows(
        [s.due for s in sent], [s.ttft for s in sent], [s.e2e for s in sent], args.slo_ttft
    )
    print(f"sent {len(sent)}: " + ", ".join(f"{k} {v}" for k, v in sorted(counted.items())))
    print(render_minutes(rows))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "outcomes": counted,
                    "minutes": [r.__dict__ for r in rows],
                    "load_average": os.getloadavg(),
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()

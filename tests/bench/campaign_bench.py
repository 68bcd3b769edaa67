"""Benchmark: the default campaign (the seed article's 18 trials) end to end, and its scoreboard.

    python tests/bench/campaign_bench.py [--operator auto|none] [--scale small] [--plan FILE]
                                         [--json FILE] [--html FILE] [--markdown FILE]

Runs `pglab lab campaign` in-process on pglab's embedded server and prints the scoreboard as a
Markdown table for the README: per trial the invariants broken on its first attempt, the ranked
diagnosis with the rank of the trial's true anti-pattern, the fixes shipped, time to detect and to
recover, and the result; then the totals beside the article's operator (15 of 18). Every figure
is measured; say what else ran on the machine when you quote them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from pglab.lab.campaign import scoreboard
from pglab.lab.campaign.plan import load_plan
from pglab.lab.campaign.runner import Campaign
from pglab.lab.core.errors import UserError
from pglab.lab.trial import seed

COLUMNS = ("#", "trial", "ids", "broken (first attempt)", "diagnosis (rank of true cause)", "fixes shipped",
           "detect s", "recover s", "result")


def markdown(data: dict[str, Any], seconds: float) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for number, trial in enumerate(data["trials"], start=1):
        rank = trial["true_cause_rank"]
        diagnosis = ", ".join(trial["diagnosis"][:3]) or "-"
        cells = [str(number), trial["name"], ", ".join(trial["ids"]), ", ".join(trial["violated"]) or "-",
                 f"{diagnosis} ({rank if rank else '-'})",
                 "; ".join(fix.split(":")[0] for fix in trial["fix"]) or "-",
                 _s(trial["detect_s"]), _s(trial["recover_s"]), trial["result"]]
        lines.append("| " + " | ".join(cells) + " |")
    total = data["summary"]
    lines.append("")
    lines.append(f"{data['operator']} operator, {data['scale']} scale, {seconds / 60:.0f} min: passed {total['passed']}"
                 f" of {total['trials']} ({total['resolved']} resolved, {total['immune']} immune, {total['failed']}"
                 f" failed); the true cause ranked first in {total['true_cause_first']} of {total['violated']}"
                 " trials that broke an invariant. The article's operator: 15 of 18.")
    return "\n".join(lines) + "\n"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operator", default="auto", choices=("auto", "none"))
    parser.add_argument("--scale", default="small", choices=tuple(seed.SCALES))
    parser.add_argument("--plan", help="a plan file (default: the built-in 18 trials)")
    parser.add_argument("--json", help="write the scoreboard JSON here")
    parser.add_argument("--html", help="write the campaign's HTML report here")
    parser.add_argument("--markdown", help="write the Markdown table here")
    args = parser.parse_args()
    began = time.perf_counter()
    try:
        plan = load_plan(args.plan)
        campaign = Campaign(plan, args.operator, seed.get_scale(args.scale),
                            say=lambda line: print(line, file=sys.stderr, flush=True))
        trials = campaign.run(None, False)
    except UserError as error:
        print(f"campaign_bench: {error}", file=sys.stderr)
        return 2
    data = scoreboard.report(plan.name, args.operator, args.scale, trials, campaign.timeline, campaign.markers)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2, default=str) + "\n")
    if args.html:
        scoreboard.write_html(data, args.html)
    table = markdown(data, time.perf_counter() - began)
    if args.markdown:
        Path(args.markdown).write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

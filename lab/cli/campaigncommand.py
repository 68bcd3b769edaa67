"""`pglab lab campaign`: argument parsing and output. The campaign itself is `pglab.lab.campaign`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from pglab.lab.cli import laboptions
from pglab.lab.core.errors import UserError
from pglab.lab.trial import seed


def cmd_campaign(args: argparse.Namespace) -> int:
    from pglab.lab.campaign import operator, scoreboard
    from pglab.lab.campaign.plan import load_plan
    from pglab.lab.campaign.runner import Campaign
    from pglab.lab.trial.report import check_output_path

    plan = load_plan(args.plan)
    check_output_path(args.json, "--json")
    check_output_path(args.html, "--html")
    if args.workspaces and not Path(args.workspaces).is_dir():
        raise UserError(f"--workspaces {args.workspaces}: no such folder")
    if args.operator != "manual" and args.workspaces:
        raise UserError("--workspaces is for --operator manual")
    assert args.operator in operator.OPERATORS
    campaign = Campaign(plan, args.operator, seed.get_scale(args.scale),
                        say=lambda line: print(f"pglab campaign: {line}", file=sys.stderr, flush=True),
                        workspaces=Path(args.workspaces) if args.workspaces else None)
    trials = campaign.run(args.dsn, args.allow_write)
    data = scoreboard.report(plan.name, args.operator, args.scale, trials, campaign.timeline, campaign.markers)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2, default=str) + "\n")
    if args.html:
        scoreboard.write_html(data, args.html)
    scoreboard.render(data, Console())
    return 0


def add_parser(actions: Any) -> None:
    from pglab.lab.campaign.operator import OPERATORS

    campaign = actions.add_parser(
        "campaign", help="the seed article's stacked trials against one service that is never reset",
        description="Trials back to back against one naive service and database, never reset: each turns up "
                    "a kind of load over a steady background; when an invariant breaks, the operator diagnoses "
                    "from live signals and ships a fix, which stays for the rest of the campaign.")
    campaign.add_argument("--plan", metavar="FILE", help="a YAML plan (default: the article's 18 trials)")
    campaign.add_argument("--operator", default="auto", choices=OPERATORS,
                          help="auto: pglab diagnoses and ships reference fixes; manual: a person (with "
                               "--workspaces); none: no fixes, to show the damage compound (default auto)")
    campaign.add_argument("--workspaces", metavar="DIR",
                          help="the manual operator's course pack (pglab lab exercise --all)")
    laboptions.add_scale(campaign, per_entry=False)
    campaign.add_argument("--json", metavar="FILE", help="write the scoreboard as JSON")
    campaign.add_argument("--html", metavar="FILE", help="write the campaign as one HTML file")
    laboptions.add_server(campaign)
    campaign.set_defaults(handler=cmd_campaign)

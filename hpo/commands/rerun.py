"""``hpo rerun``: the top-K configs of a study re-run with more training seeds (:mod:`hpo.finalists`)."""

from __future__ import annotations

import argparse
from typing import Any

from hpo.cli import _add_storage, _add_study, _load_study, add_run_options, run_options
from hpo.errors import HpoError


def cmd_rerun(args: argparse.Namespace) -> int:
    from hpo.finalists import run_finalists
    from hpo.report import configs_lines, build_report
    from hpo.study_info import study_spec

    study = _load_study(args)
    spec = study_spec(study)
    if spec is None:
        raise HpoError(f"study '{study.study_name}' has no hpo spec stored (fix: re-run finalists of a study "
                       "run by hpo optimize)")
    done = run_finalists(spec, args.storage, args.top, args.seeds, dry_run=args.dry_run, **run_options(args))
    if done is not None:
        print("\n".join(configs_lines(build_report(done))[1:]))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("rerun", help="re-run the top K configs with S more training seeds (resumable)")
    _add_study(p, spec=False)
    _add_storage(p)
    p.add_argument("--top", type=int, default=3, help="how many distinct configs (default: 3)")
    p.add_argument("--seeds", type=int, default=3, help="how many more seeds each (default: 3)")
    p.add_argument("--dry-run", action="store_true", help="print which runs would be queued and stop")
    add_run_options(p)
    p.set_defaults(func=cmd_rerun)

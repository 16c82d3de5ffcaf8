"""``hpo copy``: move studies between storages, with their artifacts (an interrupted copy resumes)."""

from __future__ import annotations

import argparse

HELP = ("copy studies (and their artifacts) to another storage; "
        "re-run the same command to resume an interrupted copy")


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo copy``.

    Args:
        args: the parsed command line.
    """
    from hpo.storage.backend import redact
    from hpo.storage.transfer import copy_studies

    done = copy_studies(args.src, args.dst, args.study, args.artifacts_from, args.artifacts_to)
    for name, trials, artifacts, refused in done:
        note = (f", {refused} checkpoints refused (not loadable with torch.load(weights_only=True); not copied)"
                if refused else "")
        print(f"copied {name}: {trials} trials, {artifacts} artifact files{note} -> {redact(args.dst)}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo copy``'s flags.

    Args:
        p: the command's parser.
    """
    p.add_argument("--from", dest="src", required=True, help="source storage URL")
    p.add_argument("--to", dest="dst", required=True, help="destination storage URL")
    p.add_argument("--study", action="append", help="study to copy (repeatable; default: all)")
    p.add_argument("--artifacts-from", help="source artifact directory (default: $HPO_ARTIFACTS or ./artifacts)")
    p.add_argument("--artifacts-to", help="destination artifact directory (default: the same)")

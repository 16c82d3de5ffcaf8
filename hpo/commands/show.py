"""``hpo show``: one study's trials as a table, and its summary."""

from __future__ import annotations

import argparse

from hpo.commands.options import add_storage, add_study, load_study

HELP = "one study's trials as a table"


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo show``.

    Args:
        args: the parsed command line.
    """
    from hpo.analysis.tables import summary, trials_table

    study = load_study(args)
    print(trials_table(study))
    print(summary(study))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo show``'s flags.

    Args:
        p: the command's parser.
    """
    add_study(p, spec=False)
    add_storage(p)

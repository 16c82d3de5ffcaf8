"""``hpo studies``: the studies in a storage, one line each."""

from __future__ import annotations

import argparse

from hpo.commands.options import add_storage
from hpo.storage.backend import open_storage

HELP = "list the studies in a storage"


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo studies``.

    Args:
        args: the parsed command line.
    """
    from hpo.analysis.tables import studies_table

    print(studies_table(open_storage(args.storage, create=False)))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo studies``' flags.

    Args:
        p: the command's parser.
    """
    add_storage(p)

"""Modules a command objective's program can import without ``hpo``: :mod:`hpo_report` and a
``wandb`` stand-in. :mod:`hpo.run.command` puts this directory first on the program's
``PYTHONPATH``; both use the standard library only, so they also run in another Python."""

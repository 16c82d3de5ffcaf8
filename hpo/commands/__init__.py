"""The ``hpo`` commands, one module each, listed in :data:`hpo.cli._COMMANDS`.

A command module has ``HELP`` (its line in ``hpo --help``), ``add_arguments(parser)`` and
``take_action(args) -> int`` (its exit code); the options several commands share, and the
values they hand to the service, are in :mod:`hpo.commands.options`. No command imports
:mod:`hpo.cli`.
"""

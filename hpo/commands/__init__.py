"""Subcommands beyond the core ones: each module here has ``register(subparsers)``.

The CLI discovers them, so a new command is one new module and no edit elsewhere.
"""

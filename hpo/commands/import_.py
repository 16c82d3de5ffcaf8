"""``hpo import wandb FILE``: a W&B sweep file as an hpo spec, one comment per translated field."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpo.errors import HpoError, SpecError

HELP = "write the hpo spec of a W&B sweep file (each field's translation commented)"


def take_action(args: argparse.Namespace) -> int:
    """Run ``hpo import``.

    Args:
        args: the parsed command line.
    """
    from hpo.specs.files import read_spec_file
    from hpo.specs.wandb_sweep import is_sweep, spec_text, translate

    source = Path(args.file)
    data = read_spec_file(source)
    if not is_sweep(data):
        raise SpecError(f"{source}: not a W&B sweep: it has no method: or parameters: "
                        "(fix: give a W&B sweep file; an hpo spec runs as it is with --spec)")
    t = translate(data, source)
    if args.out == "-":
        print(spec_text(t, source, Path.cwd() / "spec.yaml"), end="")
        return 0
    out = Path(args.out or Path("search_spaces") / f"{t.spec['study']}.yaml")
    if out.exists() and not args.force:
        raise HpoError(f"{out} exists (fix: --out ANOTHER_PATH, or --force to replace it)")
    text = spec_text(t, source, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}; run it with: hpo optimize --spec {out}", file=sys.stderr)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``hpo import``'s flags.

    Args:
        p: the command's parser.
    """
    p.add_argument("format", choices=("wandb",), help="the sweep file's format")
    p.add_argument("file", help="the sweep file, e.g. sweep_config.yaml")
    p.add_argument("--out", help="where to write the spec (default: search_spaces/STUDY.yaml; -: stdout)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")

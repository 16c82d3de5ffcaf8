"""Seed 004's step to phase 2: the top-1 value per axis from phase 1's report, run over 3 seeds.

    hpo report --study phase1 --axes embedding_ratio,glu_expansion --format json --out phase1_report.json
    python finalists.py phase1_report.json      # writes phase2_finalists.yaml
    hpo optimize --spec phase2_finalists.yaml
"""

import json
import sys
from pathlib import Path

import yaml

report = json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "phase1_report.json").read_text())
phase1 = yaml.safe_load(Path("phase1_sweep.yaml").read_text())
top1 = {axis: best[axis] for axis, best in report["top1"].items()}
spec = {
    "study": "phase2_finalists",
    "objective": phase1["objective"],
    "metrics": phase1["metrics"],
    "curve": phase1["curve"],
    "fixed": {**phase1["fixed"], **top1},
    "grid": {"seed": [1, 2, 3]},
}
Path("phase2_finalists.yaml").write_text(
    f"# phase 2: phase 1's top-1 per axis ({', '.join(f'{k}={v}' for k, v in top1.items())}), 3 seeds\n"
    + yaml.safe_dump(spec, sort_keys=False))
print(f"phase2_finalists.yaml: {top1} x seeds 1-3")

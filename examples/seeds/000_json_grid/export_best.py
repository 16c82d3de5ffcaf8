"""Seed 000's best_model/: after `hpo best --study ghost_architecture --export best_model`
(config.yaml, metrics.json), copy the best run's best_model.npz from its run directory.

    python export_best.py [best_model] [artifacts]
"""

import json
import shutil
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "best_model")
artifacts = Path(sys.argv[2] if len(sys.argv) > 2 else "artifacts")
meta = json.loads((out / "metrics.json").read_text())
run = artifacts / "runs" / meta["study"] / f"trial-{meta['trial']}"  # the trial's $HPO_CHECKPOINT_DIR
shutil.copy(run / "best_model.npz", out / "best_model.npz")
shutil.copy(run / "training_log.json", out / "training_log.json")
print(f"{out}/: trial {meta['trial']} of {meta['study']}, {meta['values']}, with best_model.npz")

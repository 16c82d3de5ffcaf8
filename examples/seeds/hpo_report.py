"""Report a training run's metrics to hpo; standard library only: copy this file next to your script.

    import hpo_report
    config = hpo_report.config()                        # the trial's config ({} without hpo)
    hpo_report.report(step, val_loss=2.5, tokens=4096, train_seconds=3.2)
    hpo_report.result(val_loss=2.4)                     # optional: the final metrics

Each call writes one JSON line to the file hpo names in $HPO_REPORT_FILE; run without hpo,
every call does nothing. hpo may end the process (SIGTERM, then SIGKILL) after any report:
keep what a retry needs in $HPO_CHECKPOINT_DIR ($HPO_RESUME_DIR: the failed run's, if any).
"""

import json
import os

_out = None


def _write(record):
    global _out
    if _out is None and os.environ.get("HPO_REPORT_FILE"):
        _out = open(os.environ["HPO_REPORT_FILE"], "w", buffering=1)
    if _out is not None:
        _out.write(json.dumps(record) + "\n")


def report(step, **metrics):
    _write({"step": int(step), **{k: float(v) for k, v in metrics.items()}})


def result(**metrics):
    _write({"result": {k: float(v) for k, v in metrics.items()}})


def config():
    return json.loads(os.environ.get("HPO_CONFIG", "{}"))

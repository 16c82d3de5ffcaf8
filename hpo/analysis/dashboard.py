"""``hpo dashboard``: optuna-dashboard on the study storage, with the artifact store wired.

The same storage URL rules as every command (``--storage``, ``$HPO_STORAGE``, ``studies.db``)
and the same artifact directory as checkpoints and exports (``--artifacts``,
``$HPO_ARTIFACTS``, ``artifacts/``), so trials' checkpoints are browsable and files can be
uploaded from the browser. Bound to 127.0.0.1 unless ``host`` says otherwise: the dashboard
has no login, and anyone who reaches it can edit studies. It logs nothing per HTTP request
(optuna-dashboard's server would print a line for each of the dozens a page makes); errors
still reach stderr. It never creates a database: a typo'd ``--storage`` is one line.
"""

from __future__ import annotations

import sys
from typing import TextIO

import bottle
import optuna_dashboard

from hpo.storage.artifacts import artifact_dir, open_artifact_store
from hpo.errors import HpoError
from hpo.storage.backend import open_storage, redact, resolve_url


def serve(storage_url: str | None = None, host: str = "127.0.0.1", port: int = 8080,
          artifacts: str | None = None, out: TextIO = sys.stderr) -> None:
    """Run the dashboard until interrupted."""
    storage = open_storage(storage_url, create=False)
    store = open_artifact_store(artifacts)
    print(f"optuna-dashboard on http://{host}:{port}/dashboard/ for {redact(resolve_url(storage_url))}, "
          f"artifacts in {artifact_dir(artifacts)}; Ctrl-C stops it", file=out, flush=True)
    try:
        bottle.run(optuna_dashboard.wsgi(storage, artifact_store=store), host=host, port=port, quiet=True)
    except OSError as e:
        raise HpoError(f"dashboard: cannot listen on {host}:{port}: {e.strerror or e} "
                       "(fix: --port another, or stop what uses it)") from None

"""``optimize --ray`` on a real two-node Ray cluster with the real PostgreSQL behind the gRPC proxy.

Both "nodes" run on this machine (``ray.cluster_utils.Cluster``), bound to 127.0.0.1: Ray turns
a loopback address into the machine's interface address unless told it is a one-machine Ray
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), so every process here gets that. The tests stop only
what they started (``Cluster.shutdown()``, the proxy's PID). One cluster serves the module;
the test that removes a node runs last.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import ROOT, hpo_env, run_hpo
from hpo.storage.artifacts import CHECKPOINT_ATTR
from hpo.cli import main
from hpo.run.ray_backend import plan_slots, worker_argv
from hpo.storage.backend import open_storage

LOOPBACK_RAY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass
class RayCluster:
    cluster: Any
    head_id: str
    worker: Any
    proxy_url: str
    env: dict[str, str]


def _proxy_url(proxy: subprocess.Popen[str]) -> str:
    line = proxy.stderr.readline()  # type: ignore[union-attr]  # "storage proxy for ... at grpc://..."
    found = re.search(r"grpc://127\.0\.0\.1:\d+", line)
    assert found, line + proxy.stderr.read()  # type: ignore[union-attr]
    return found.group(0)


@pytest.fixture(scope="module")
def ray_cluster(pg_url: str) -> Iterator[RayCluster]:
    temp = tempfile.mkdtemp(prefix="hpo-ray-", dir="/tmp")  # short: Ray's socket paths live under it
    os.makedirs(os.path.join(temp, "ray"))  # Ray's sessions and its current-cluster file: none in /tmp/ray
    env = {**LOOPBACK_RAY, "RAY_TMPDIR": temp,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # before `import ray`: Ray reads it once; its node processes inherit it
    from ray.cluster_utils import Cluster

    proxy = subprocess.Popen([sys.executable, "-m", "hpo", "storage-proxy", "--storage", pg_url, "--port", "0"],
                             env=hpo_env(), stderr=subprocess.PIPE, text=True)  # starts while the nodes do
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args=dict(
            num_cpus=1, node_ip_address="127.0.0.1", include_dashboard=False, include_log_monitor=False))
        worker = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        cluster.wait_for_nodes()
        yield RayCluster(cluster, cluster.head_node.node_id, worker, _proxy_url(proxy),
                         {**env, "RAY_ADDRESS": cluster.address})
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        if cluster is not None:
            cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(temp, ignore_errors=True)


def _spec(root: Path, name: str, n_trials: int, **fixed: object) -> None:
    (root / "search_spaces").mkdir(parents=True, exist_ok=True)
    data = {"study": name, "objective": "objectives.synthetic:train", "metrics": {"val_loss": "minimize"},
            "n_trials": n_trials, "sampler": {"name": "random", "options": {"seed": 0}}, "fixed": fixed,
            "space": {"lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}}}
    (root / "search_spaces" / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _args(name: str, rc: RayCluster, artifacts: Path) -> list[str]:
    return ["optimize", "--study", name, "--storage", rc.proxy_url, "--ray", "auto", "--heartbeat", "1",
            "--grace", "3", "--artifacts", str(artifacts)]


def _node(trial: optuna.trial.FrozenTrial) -> str:
    """The Ray node a trial ran on (``HPO_HOST`` is ``host/ray-<node id[:8]>`` in a Ray worker)."""
    return trial.system_attrs["hpo:worker"]["host"].rpartition("/ray-")[2]


def test_bad_ray_address_and_missing_extra_are_one_line(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _spec(workdir, "ray_bad", n_trials=1)
    for k, v in LOOPBACK_RAY.items():
        monkeypatch.setenv(k, v)  # what `--ray` (a local Ray) would set
    for address, says in [("http://head:6379", "is not auto, ray://HOST:PORT or HOST:PORT"),
                          ("127.0.0.1:1", "nothing answers at 127.0.0.1:1"),
                          ("ray://127.0.0.1:1", "nothing answers at 127.0.0.1:1")]:
        assert main(["optimize", "--study", "ray_bad", "--ray", address]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: command line: --ray") and says in err and "(fix: " in err, err
        assert err.count("\n") == 1, err
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` does without the extra
    assert main(["optimize", "--study", "ray_bad", "--ray"]) == 2
    err = capsys.readouterr().err
    assert err == 'error: command line: --ray: Ray is not installed (fix: pip install -e ".[ray]")\n'


def test_slots_one_per_gpu_or_cpu_share_round_robin_over_nodes() -> None:
    nodes = [{"NodeID": "gpu", "Alive": True, "Resources": {"CPU": 16, "GPU": 2}},
             {"NodeID": "cpu", "Alive": True, "Resources": {"CPU": 3}},
             {"NodeID": "dead", "Alive": False, "Resources": {"CPU": 64}}]
    slots = plan_slots(nodes, cpus_per_worker=1.5)
    assert [(s.node_id, s.num_gpus, s.num_cpus, s.threads) for s in slots] == [
        ("gpu", 1, 0, 8), ("cpu", 0, 1.5, 1), ("gpu", 1, 0, 8), ("cpu", 0, 1.5, 1)]
    assert [s.node_id for s in plan_slots(nodes, 1.5, limit=2)] == ["gpu", "cpu"]
    assert worker_argv(["optimize", "--ray", "--workers", "4", "--study", "x"]) == ["optimize", "--study", "x"]
    assert worker_argv(["optimize", "--ray", "auto", "--n-trials", "3"]) == ["optimize", "--n-trials", "3"]
    assert worker_argv(["optimize", "--ray=ray://h:1", "--workers=2"]) == ["optimize"]


def _running_with_checkpoint_on(url: str, name: str, node: str) -> optuna.trial.FrozenTrial | None:
    try:
        trials = optuna.load_study(study_name=name, storage=open_storage(url)).trials
    except KeyError:
        return None
    return next((t for t in trials if t.state == TrialState.RUNNING and CHECKPOINT_ATTR in t.system_attrs
                 and _node(t) == node), None)


@pytest.mark.slow
def test_study_over_both_nodes_to_exactly_its_total_a_lost_nodes_trial_resumed_on_the_other(
        ray_cluster: RayCluster, pg_url: str, tmp_path: Path) -> None:
    """Two workers, one per node, share the study through the proxy; the worker node is removed
    while its trial runs, past a checkpoint. Runs last: the cluster has one node after it."""
    name, lost, head = "ray_lost_node", ray_cluster.worker.node_id[:8], ray_cluster.head_id[:8]
    _spec(tmp_path, name, n_trials=4, steps=6, sleep_per_step=0.4, checkpoint_every=2)
    driver = subprocess.Popen([sys.executable, "-m", "hpo", *_args(name, ray_cluster, tmp_path / "artifacts")],
                              cwd=tmp_path, env=hpo_env(**ray_cluster.env), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline, victim = time.monotonic() + 90, None
        while victim is None and time.monotonic() < deadline and driver.poll() is None:
            victim = _running_with_checkpoint_on(pg_url, name, lost)
            time.sleep(0.2)
        assert victim is not None, "no checkpointed trial ran on the worker node"
        ray_cluster.cluster.remove_node(ray_cluster.worker, allow_graceful=False)
        out, err = driver.communicate(timeout=150)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 0, err
    assert "2 workers on 2 of 2 Ray nodes" in err and "[4/4]" in err  # progress and summary on the driver
    assert "study ray_lost_node: 4 COMPLETE, 1 FAIL" in out
    trials = optuna.load_study(study_name=name, storage=open_storage(pg_url)).trials
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 4 + ["FAIL"]  # exactly the total
    assert trials[victim.number].state == TrialState.FAIL and _node(trials[victim.number]) == lost
    assert "no heartbeat" in trials[victim.number].user_attrs["fail_reason"]
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == victim.number)
    assert retry.state == TrialState.COMPLETE and _node(retry) == head
    assert min(retry.intermediate_values) > victim.system_attrs[CHECKPOINT_ATTR]["step"] >= 2  # resumed

"""Storage URLs, SQLite tuned for several processes, redaction, journal files, fast writes."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from sqlalchemy import text

from hpo.errors import HpoError
from hpo._optuna import metric_key, trial_metrics
from hpo.storage.backend import CurveWriter, curve, open_storage, redact, resolve_url


def test_resolve_url_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    assert resolve_url(None) == "sqlite:///studies.db"
    monkeypatch.setenv("HPO_STORAGE", "sqlite:///env.db")
    assert resolve_url(None) == "sqlite:///env.db"
    assert resolve_url("sqlite:///arg.db") == "sqlite:///arg.db"


def test_redact_hides_password() -> None:
    shown = redact("postgresql+psycopg://alice:s3cret@db.example:5432/studies")
    assert "s3cret" not in shown and "alice" in shown and "***" in shown


def test_unreachable_server_is_one_line_without_password() -> None:
    with pytest.raises(HpoError) as err:
        open_storage("postgresql+psycopg://bob:hunter2@127.0.0.1:1/nothing")
    assert "hunter2" not in str(err.value)
    assert "cannot open" in str(err.value) and "\n" not in str(err.value)


def test_sqlite_is_wal_with_busy_timeout(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    with storage.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 60000


def test_journal_storage(tmp_path: Path) -> None:
    storage = open_storage(f"journal:{tmp_path / 'j' / 'log.jsonl'}")
    study = optuna.create_study(study_name="j", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="j", storage=open_storage(f"journal:{tmp_path / 'j' / 'log.jsonl'}")).trials) == 2


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "journal"])
def test_curve_writer_is_durable_on_return(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = {"sqlite": f"sqlite:///{tmp_path / 'c.db'}", "journal": f"journal:{tmp_path / 'c.log'}"}.get(backend)
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
    storage = open_storage(url)
    study = optuna.create_study(study_name=f"curve-{backend}", storage=storage, directions=["minimize", "minimize"])
    trial = study.ask()
    writer = CurveWriter(storage, trial._trial_id)
    writer.write(3, 2.5, {"val_loss": 2.5, "tokens": 300.0})
    writer.write(4, float("nan"), {"val_loss": float("nan"), "tokens": 400.0})
    # A separate connection sees both reports at once: nothing is buffered in this process.
    other = open_storage(url).get_all_trials(study._study_id)[0]
    assert other.intermediate_values[3] == 2.5
    assert other.intermediate_values[4] != other.intermediate_values[4]  # NaN stored as NaN
    metrics = trial_metrics(other.system_attrs)
    assert list(metrics) == [3, 4]
    assert metrics[3] == {"val_loss": 2.5, "tokens": 300.0}
    assert metrics[4]["tokens"] == 400.0
    writer.close()


def test_curve_reads_back_what_the_writer_wrote_on_any_x() -> None:
    metrics = {1: {"val_ppl": 30.0, "tokens": 100.0, "train_seconds": 2.0}, 2: {"val_ppl": 20.0, "tokens": 200.0},
               4: {"val_ppl": 10.0, "tokens": 400.0, "train_seconds": 8.0}}
    t = optuna.trial.create_trial(value=1.0, intermediate_values={1: 3.0, 2: 2.0, 4: 1.0, 5: 0.5},
                                  system_attrs={metric_key(s): m for s, m in metrics.items()})
    xs, ys = curve(t)  # the steps and the curve values
    assert xs.tolist() == [1, 2, 4, 5] and ys.tolist() == [3.0, 2.0, 1.0, 0.5]
    xs, ys = curve(t, "val_ppl", "train_seconds")  # reports without the x or the y are skipped
    assert xs.tolist() == [2.0, 8.0] and ys.tolist() == [30.0, 10.0]
    xs, ys = curve(t, None, "tokens")  # tokens falls back on the step (a report through plain Optuna)
    assert xs.tolist() == [100.0, 200.0, 400.0, 5.0] and ys.tolist() == [3.0, 2.0, 1.0, 0.5]


def test_check_url_and_the_proxy_client_agree_on_grpc_addresses() -> None:
    """One parser: what `hpo optimize` lets through, the proxy client can connect to, and back."""
    from hpo.errors import HpoError, SpecError
    from hpo.storage.backend import check_url
    from hpo.storage.proxy import parse_url

    for url, address in [("grpc://127.0.0.1:13000", ("127.0.0.1", 13000)), ("grpc://[::1]:13000", ("::1", 13000)),
                         ("grpc://head:7/", ("head", 7))]:
        assert check_url(url) == url and parse_url(url) == address
    for url in ("grpc://head", "grpc://:13000", "grpc://head:port"):
        with pytest.raises(SpecError, match="is not a proxy address"):
            check_url(url)
        with pytest.raises(HpoError, match="not grpc://HOST:PORT"):
            parse_url(url)

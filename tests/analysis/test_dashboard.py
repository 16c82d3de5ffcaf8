"""``hpo dashboard``: optuna-dashboard on our storage, checked over HTTP and in headless Chromium.

The browser test drives Debian's chromium (``apt-get install chromium``, done by .ci/run)
through Python Playwright; nothing is downloaded.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import optuna
import pytest
from conftest import hpo_env
from made_studies import add_best_with_checkpoint, known_study, shared_sweeps

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """``hpo dashboard`` in a subprocess over the shared single- and multi-objective sweeps
    plus a study whose best trial has a checkpoint in the artifact store."""
    tmp = tmp_path_factory.mktemp("dash")
    url = shared_sweeps(tmp_path_factory)
    data = add_best_with_checkpoint(known_study(url, "dash_known"), tmp / "artifacts", tmp)
    port = _free_port()
    log = (tmp / "dashboard.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpo", "dashboard", "--storage", url, "--port", str(port),
         "--artifacts", str(tmp / "artifacts")],
        cwd=tmp, env=hpo_env(), stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(base + "/api/studies")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the dashboard did not come up: {(tmp / 'dashboard.log').read_text()}")
                time.sleep(0.3)
        yield {"base": base, "url": url, "tmp": tmp, "data": data}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _study_ids(base: str) -> dict[str, int]:
    _, body = _get(base + "/api/studies")
    return {s["study_name"]: s["study_id"] for s in json.loads(body)["study_summaries"]}


def test_api_answers_for_our_studies(dashboard: dict[str, object]) -> None:
    base, url = str(dashboard["base"]), str(dashboard["url"])
    ids = _study_ids(base)
    assert {"so", "mo", "dash_known"} <= set(ids)
    _, body = _get(f"{base}/api/studies/{ids['mo']}?after=0")
    detail = json.loads(body)
    assert len(detail["trials"]) == 24 and detail["objective_names"] == ["val_loss", "train_seconds"]
    assert detail["has_intermediate_values"]
    study = optuna.load_study(study_name="mo", storage=url)
    first = study.trials[0]
    assert detail["trials"][0]["intermediate_values"] == [
        {"step": s, "value": v} for s, v in sorted(first.intermediate_values.items())]


def test_checkpoints_are_served_from_our_artifact_store(dashboard: dict[str, object]) -> None:
    base, url = str(dashboard["base"]), str(dashboard["url"])
    study = optuna.load_study(study_name="dash_known", storage=url)
    best = study.best_trial
    ref = best.system_attrs["hpo:checkpoint"]
    status, body = _get(f"{base}/artifacts/{_study_ids(base)['dash_known']}/{best._trial_id}/{ref['artifact_id']}")
    assert status == 200 and body == dashboard["data"]


def test_the_dashboard_logs_no_line_per_request(dashboard: dict[str, object]) -> None:
    base, tmp = str(dashboard["base"]), Path(str(dashboard["tmp"]))
    for _ in range(3):
        _get(base + "/api/studies")
    log = (tmp / "dashboard.log").read_text()
    assert "GET /api/studies" not in log and log.count("\n") == 1, log  # the one "optuna-dashboard on ..." line


def test_browser_shows_trials_and_curves(dashboard: dict[str, object], tmp_path: Path) -> None:
    """Open the dashboard in headless Chromium, go to each study, see its trials and curves."""
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing (fix: apt-get install -y chromium, as .ci/run does)")
    base = str(dashboard["base"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(base + "/dashboard/")
            # Single objective: the study page draws the intermediate values of every trial.
            page.get_by_role("link", name="so", exact=False).filter(has_text="Direction: MINIMIZE").first.click()
            expect(page.get_by_text("Intermediate values")).to_be_visible(timeout=30_000)
            card = page.locator(".MuiCard-root", has_text="Intermediate values")
            expect(card.locator(".js-plotly-plot .scatterlayer .trace").first).to_be_attached(timeout=30_000)
            assert card.locator(".scatterlayer .trace").count() == 30
            page.screenshot(path=str(tmp_path / "so_study.png"), full_page=True)
            # Multi-objective: the Pareto front on the study page, curves in each trial's detail.
            page.goto(base + "/dashboard/")
            page.get_by_role("link").filter(has_text="Direction: MINIMIZE, MINIMIZE").first.click()
            expect(page.get_by_text("Pareto Front")).to_be_visible(timeout=30_000)
            page.get_by_role("link", name="Trials (List)").click()
            expect(page.get_by_text("24 Trials")).to_be_visible(timeout=30_000)
            expect(page.get_by_text("Intermediate Values").first).to_be_visible()
            page.get_by_text("Trial 1", exact=True).click()
            expect(page.get_by_role("heading", name="Trial 1 (trial_id=")).to_be_visible()
            first_step = optuna.load_study(study_name="mo", storage=str(dashboard["url"])).trials[1]
            expect(page.get_by_text(f"1 {first_step.intermediate_values[1]!r}")).to_be_visible()
            page.screenshot(path=str(tmp_path / "mo_trial.png"), full_page=True)
            # A checkpoint in the artifact store is listed with its trial.
            page.goto(base + "/dashboard/")
            page.get_by_role("link").filter(has_text="dash_known").first.click()
            page.get_by_role("link", name="Trials (List)").click()
            page.get_by_text("Trial 5", exact=True).click()
            expect(page.get_by_text("ckpt_step30.pt")).to_be_visible(timeout=30_000)
        finally:
            browser.close()
    print(f"screenshots: {tmp_path / 'so_study.png'} {tmp_path / 'mo_trial.png'}")

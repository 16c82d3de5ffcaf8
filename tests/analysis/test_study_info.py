"""The spec stored with a study: one short attribute per field, and the old one-attribute form read too."""

from __future__ import annotations

import json
from pathlib import Path

import optuna

from hpo.specs.models import dump_spec

from hpo.run.session import load_spec
from hpo.analysis.study_info import SPEC_ATTR, store_spec, study_spec
from hpo.storage.backend import open_storage

ROOT = Path(__file__).resolve().parents[2]


def test_split_per_field_reads_back_and_reads_well(tmp_path: Path) -> None:
    spec = load_spec(ROOT / "search_spaces" / "ngpt_ttt.yaml", check_objective=False)
    study = optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{tmp_path / 'a.db'}"))
    store_spec(study, spec)
    attrs = optuna.load_study(study_name="s", storage=study._storage).user_attrs
    assert "hpo:spec.space" in attrs and "hpo:spec.sampler" in attrs and SPEC_ATTR not in attrs
    whole = len(json.dumps(dump_spec(spec)))
    assert max(len(json.dumps(v)) for v in attrs.values()) < whole / 2, "no attribute holds most of the spec"
    assert study_spec(study) == spec


def test_the_old_form_is_read_and_replaced(tmp_path: Path) -> None:
    spec = load_spec(ROOT / "search_spaces" / "ngpt_ttt.yaml", check_objective=False)
    study = optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{tmp_path / 'a.db'}"))
    study.set_user_attr(SPEC_ATTR, dump_spec(spec))  # what hpo stored before
    assert study_spec(study) == spec
    smaller = spec.model_copy(update={"target": None, "metrics": {"val_loss": "minimize"}})
    store_spec(study, smaller)
    assert study.user_attrs[SPEC_ATTR] is None and "hpo:spec.target" not in study.user_attrs
    assert study_spec(study) == smaller
    store_spec(study, spec)
    store_spec(study, smaller)  # a field the new spec leaves out is not read back from the old one
    assert study.user_attrs["hpo:spec.target"] is None and study_spec(study) == smaller

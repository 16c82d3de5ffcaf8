"""A stand-in for the ``wandb`` package when hpo runs a W&B sweep's program: nothing is sent anywhere.

hpo puts this module's directory first on the program's PYTHONPATH, so ``import wandb`` finds
it even where the real package is installed, and the program runs unchanged:

* ``wandb.init(config=defaults)`` returns ``wandb.run``; ``wandb.config`` holds the trial's
  config over those defaults (attribute and item access; the sweep's values win, as in W&B);
* ``wandb.log({...}, step=None, commit=None)`` reports the numbers among the values (nested
  dicts as ``outer.inner``) at ``step``, else at an internal counter that each committed call
  advances;
* ``wandb.run.summary[...] = x`` becomes the run's final metrics at ``wandb.finish()``;
* ``wandb.agent(sweep_id, function)`` calls ``function`` once; anything else
  (``wandb.watch``, ``wandb.Table``, ``wandb.define_metric``...) accepts any call and does nothing.
"""

import importlib.util
import json
import os

__version__ = "0.0.0+hpo"

_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hpo_report.py")
_spec = importlib.util.spec_from_file_location("_hpo_report", _path)
_hpo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_hpo)  # by path: a copy of hpo_report.py beside the program may be older


class _Nothing:
    """Whatever W&B object a program touches that hpo has no use for."""

    def __call__(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __bool__(self):
        return False


class Config(dict):
    """``wandb.config``: a dict with attribute access; keys the sweep set cannot be changed."""

    def __init__(self, values=()):
        super().__init__(values)
        object.__setattr__(self, "_locked", set(self))

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __setitem__(self, key, value):
        if key not in self._locked:
            super().__setitem__(key, value)

    def update(self, values=None, allow_val_change=None, **more):
        for key, value in {**_as_dict(values), **more}.items():
            self[key] = value

    def setdefaults(self, values):
        for key, value in _as_dict(values).items():
            self.setdefault(key, value)

    def as_dict(self):
        return dict(self)


class Run:
    """``wandb.run``: this trial."""

    def __init__(self, config):
        self.config = config
        self.summary = {}
        self.id = os.environ.get("HPO_TRIAL", "0")
        self.name = f"trial-{self.id}"
        self.project = os.environ.get("HPO_STUDY", "")
        self.dir = os.environ.get("HPO_CHECKPOINT_DIR", ".")
        self.step = 0

    def log(self, data, step=None, commit=None):
        if step is not None:
            self.step = int(step)
        _hpo.report(self.step, **_numbers(data))
        if step is None and commit is not False:
            self.step += 1

    def finish(self, exit_code=None, quiet=None):
        global run
        final = _numbers(self.summary)
        if final:
            _hpo.result(**final)
        run = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finish()
        return False

    def __getattr__(self, name):
        return _Nothing()


def _as_dict(values):
    if values is None:
        return {}
    return dict(values) if hasattr(values, "keys") else dict(vars(values))  # argparse.Namespace too


def _nested(flat):
    """``{"optimizer.lr": 0.1}`` as W&B's nested parameters: ``{"optimizer": {"lr": 0.1}}``."""
    out = {}
    for key, value in flat.items():
        *outer, last = key.split(".")
        node = out
        for part in outer:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def _numbers(data, prefix=""):
    out = {}
    for key, value in dict(data).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_numbers(value, name + "."))
        elif not isinstance(value, (bool, str, bytes)):
            try:
                out[name] = float(value)
            except (TypeError, ValueError):
                pass  # images, tables, histograms: nothing hpo judges
    return out


config = Config(_nested(json.loads(os.environ.get("HPO_CONFIG", "{}"))))
run = None
summary = {}


def init(*args, config=None, **kwargs):
    global run, summary
    globals()["config"].setdefaults(config)
    if run is None:
        run = Run(globals()["config"])
        summary = run.summary
    return run


def log(data, step=None, commit=None, **kwargs):
    (run or init()).log(data, step=step, commit=commit)


def finish(exit_code=None, quiet=None):
    if run is not None:
        run.finish()


def agent(sweep_id=None, function=None, count=None, **kwargs):
    if function is not None:
        function()


def sweep(sweep=None, **kwargs):
    return "hpo"


def login(*args, **kwargs):
    return True


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _Nothing()

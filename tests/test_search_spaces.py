"""Every built-in method declares a search space (``UnlearningMethod.search_space``) that
``unlearnlab tune`` can run: its draws pass the method's own validation, its bounds stay inside
the method's declared ranges, its learning rates are on log scales, and it holds the values the
lab runs (the defaults and every ``refinements`` value, which a study's warm start enqueues as
its first trial, ``studies.load_study``). One quick study per new method runs end to end."""

from __future__ import annotations

import json
import warnings

import pytest

from unlearnlab.data import list_datasets
from unlearnlab.methods import create, get_method, list_methods
from unlearnlab.methods.params import param_ranges, param_type
from unlearnlab.tuning import TuneConfig

optuna = pytest.importorskip("optuna")
from optuna.distributions import (  # noqa: E402
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

# Built-in methods without a search space, and why (none: the leaderboard tunes every method
# with the same budget).
NOT_TUNABLE: dict[str, str] = {}
ARCHS = ("cnn", "mlp")
DRAWS = 40  # random draws per method
MAX_SEARCHED_EPOCHS = 8  # no space may make a CPU trial run more epochs than this


def builtin_methods() -> list[str]:
    """Registry keys of the methods shipped in ``unlearnlab.methods`` (not plugins)."""
    return [name for name in list_methods()
            if get_method(name).__module__.startswith("unlearnlab.methods.")]


def tunable_builtins() -> list[str]:
    return [name for name in builtin_methods() if name not in NOT_TUNABLE]


def draw(method_cls, study, fixed: dict | None = None):
    """One trial of ``study`` (with ``fixed`` enqueued first): (params, distributions)."""
    if fixed is not None:
        study.enqueue_trial(fixed)
    trial = study.ask()
    with warnings.catch_warnings():
        # a fixed value outside its distribution warns; ``inside`` reports it as a failure
        warnings.simplefilter("ignore")
        params = method_cls.search_space(trial)
    study.tell(trial, 0.0)
    return params, dict(trial.distributions)


def inside(distribution, value) -> bool:
    """Whether ``value`` is one of the values ``distribution`` can draw."""
    if isinstance(distribution, CategoricalDistribution):
        return any(type(value) is type(choice) and value == choice
                   for choice in distribution.choices)
    if isinstance(distribution, IntDistribution) and (isinstance(value, bool)
                                                      or not isinstance(value, int)):
        return False
    return distribution.low <= value <= distribution.high


def values_run(method_cls) -> list[tuple[str, dict]]:
    """The hyperparameters the lab runs the method with: its defaults, each ``refinements``
    entry on top of them, and the default preset of every dataset, scenario and architecture
    (what a study's first trial enqueues)."""
    points = [("defaults", dict(method_cls.defaults))]
    points += [(f"refinements[{key!r}]", {**method_cls.defaults, **entry})
               for key, entry in method_cls.refinements.items()]
    for dataset in list_datasets():
        for kind in method_cls.scenarios:
            for arch in ARCHS:
                points.append((f"{dataset}/{kind}/{arch}",
                               method_cls.resolve_params(dataset=dataset, scenario=kind,
                                                         arch=arch)))
    return points


def test_every_builtin_method_is_tunable_unless_a_reason_is_stated():
    builtins = builtin_methods()
    assert "finetune" in builtins and "relabel" in builtins
    assert set(NOT_TUNABLE) <= set(builtins), "a reason names a method that does not exist"
    untunable = {name for name in builtins if not get_method(name).tunable()}
    assert untunable == set(NOT_TUNABLE), (f"not tunable without a stated reason: "
                                           f"{sorted(untunable - set(NOT_TUNABLE))}; tunable "
                                           f"despite one: {sorted(set(NOT_TUNABLE) - untunable)}")


@pytest.mark.parametrize("name", tunable_builtins())
def test_search_space_draws_pass_the_methods_validation(name):
    """Random and TPE draws give parameters the method accepts on every scenario it runs, of
    the declared types, and the same parameter names every time."""
    method_cls = get_method(name)
    for sampler in (optuna.samplers.RandomSampler(seed=0),
                    optuna.samplers.TPESampler(seed=0, n_startup_trials=5)):
        study = optuna.create_study(sampler=sampler)
        names = None
        for _ in range(DRAWS):
            params, distributions = draw(method_cls, study)
            assert params, f"{name}: the search space draws nothing"
            assert set(params) <= set(method_cls.defaults), f"{name}: unknown keys"
            assert set(params) == set(distributions), (
                f"{name}: every searched value must come from the trial (and be named as the "
                "parameter, so that the tuned preset can be read back)")
            assert names is None or set(params) == names
            names = set(params)
            for kind in method_cls.scenarios:
                method = create(method_cls, dataset="mnist", scenario=kind, params=params)
                assert {k: method.params[k] for k in params} == params


@pytest.mark.parametrize("name", tunable_builtins())
def test_search_space_bounds_stay_inside_the_declared_ranges(name):
    """Each distribution's ends (every choice of a categorical one) pass the method's range
    check, learning rates are searched on a log scale, and epochs stay capped."""
    method_cls = get_method(name)
    ranges = param_ranges(method_cls)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(DRAWS):
        _, distributions = draw(method_cls, study)
        for key, distribution in distributions.items():
            integer = param_type(method_cls, key) is int
            if isinstance(distribution, CategoricalDistribution):
                ends = list(distribution.choices)
            else:
                ends = [distribution.low, distribution.high]
                assert isinstance(distribution, IntDistribution) == integer, (
                    f"{name}: {key} is {'an int' if integer else 'a float'} parameter")
            if key in ranges:
                for end in ends:
                    assert ranges[key].admits(end, integer or ranges[key].integer), (
                        f"{name}: {key} = {end} is outside its range "
                        f"{ranges[key].describe(integer)}")
            if key.endswith("lr"):
                assert isinstance(distribution, FloatDistribution) and distribution.log, (
                    f"{name}: {key} spans decades; search it on a log scale")
            if key.endswith("epochs"):
                assert max(ends) <= MAX_SEARCHED_EPOCHS, f"{name}: {key} up to {max(ends)}"


@pytest.mark.parametrize("name", tunable_builtins())
def test_search_space_holds_the_defaults_and_every_refinement(name):
    """Every value the lab runs (defaults, refinements, each dataset's default preset) lies in
    the space: enqueued as a study's first trial (as ``studies.load_study`` does), each
    searched value is drawn as given and lies inside its distribution."""
    method_cls = get_method(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    _, distributions = draw(method_cls, study)
    for where, point in values_run(method_cls):
        fixed = {k: v for k, v in point.items() if k in distributions}
        params, dists = draw(method_cls, study, fixed)
        for key, value in fixed.items():
            assert inside(dists[key], value), (
                f"{name}: {where} sets {key} = {value!r}, outside the search space "
                f"{dists[key]}")
            assert params[key] == value


def test_a_value_outside_the_space_is_caught():
    """The checks above can fail: a space without the default, and a value outside a
    distribution, are reported."""
    assert not inside(FloatDistribution(1e-4, 1e-2, log=True), 3e-2)
    assert not inside(IntDistribution(1, 3), 4)
    assert not inside(IntDistribution(1, 3), 2.0)
    assert not inside(CategoricalDistribution([1.0, 2.0]), 4.0)
    assert inside(CategoricalDistribution([1.0, 4.0]), 4.0)

    class Narrow(get_method("finetune")):
        name = "narrow_finetune"

        @classmethod
        def search_space(cls, trial):
            return {"lr": trial.suggest_float("lr", 1e-4, 1e-3, log=True)}

    study = optuna.create_study()
    params, dists = draw(Narrow, study, {"lr": Narrow.defaults["lr"]})
    assert params["lr"] == 1e-2 and not inside(dists["lr"], params["lr"])


# ------------------------------------------------------------------------ a quick real study

@pytest.mark.parametrize("name", ["finetune", "ssd"])
def test_quick_study_of_a_new_method(tmp_path, name):
    """Two trials on digits in quick mode, two seeds: the first trial is the default preset
    (the warm start), and the best one is written as the method's tuned preset."""
    from unlearnlab.cli import main

    root = tmp_path / "data"
    argv = ["tune", "--dataset", "digits", "--forget", "class:6", "--quick", "--method", name,
            "--trials", "2", "--seeds", "2", "--data-dir", str(root)]
    assert main(argv) == 0
    study = optuna.load_study(study_name=f"{name}-digits-class:6-quick",
                              storage=f"sqlite:///{root / 'studies' / 'optuna.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2
    defaults = TuneConfig(dataset="digits", forget="class:6", method=name, quick=True,
                          data_dir=str(root)).default_params()
    assert done[0].params == {k: defaults[k] for k in done[0].params}
    assert all(0 <= t.value <= 1 for t in done)
    entry = json.loads((root / "presets" / "tuned.json").read_text())[name]["digits"]
    assert entry["searched"] == study.best_trial.params
    built = create(name, preset="tuned", dataset="digits", data_dir=str(root))
    assert {k: built.params[k] for k in entry["searched"]} == entry["searched"]

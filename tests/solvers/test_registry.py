"""The declared-option machinery: every constraint accepts its boundary and refuses just past it."""

import math

import numpy as np
import pytest

import solvers.anneal as anneal_module
from reference import fit_grid
from reference.validation import Array, ByWidth, Choice, Flag, Integer, Interval, Real
from solvers import BQM, METHODS, LayerProblem, method_names, register, solve
from solvers._registry import SHARED, resolve_options


@pytest.mark.parametrize("value", [1, 5, 10, np.int64(7), 3.0])
def test_integer_accepts_range(value):
    Integer(1, low=1, high=10).check(value, "k")


@pytest.mark.parametrize("value,kind", [(0, ValueError), (11, ValueError), (2.5, ValueError),
                                        (math.nan, ValueError), (True, TypeError), ("3", TypeError),
                                        (None, ValueError)])
def test_integer_refuses(value, kind):
    with pytest.raises(kind, match="k must be an integer >= 1 and <= 10"):
        Integer(1, low=1, high=10).check(value, "k")


def test_integer_bound_by_another_option():
    p = Integer(32, low="window")
    p.check(16, "max_window", {"window": 16})
    with pytest.raises(ValueError, match="max_window must be an integer >= window"):
        p.check(15, "max_window", {"window": 16})


@pytest.mark.parametrize("value", [1e-300, 1.0, 2**31 - 1])
def test_real_open_low(value):
    Real(None, low=0, high=2**31 - 1, open_low=True).check(value, "t")


@pytest.mark.parametrize("value,kind", [(0.0, ValueError), (-1.0, ValueError), (math.inf, ValueError),
                                        (math.nan, ValueError), (2.0**31, ValueError), (False, TypeError),
                                        ("1", TypeError)])
def test_real_refuses(value, kind):
    with pytest.raises(kind, match="^t must be a finite number > 0"):
        Real(None, low=0, high=2**31 - 1, open_low=True).check(value, "t")


def test_none_only_where_declared():
    Real(None, low=0, none=True).check(None, "t")
    with pytest.raises(ValueError, match="found None"):
        Real(1.0, low=0).check(None, "t")


def test_choice_flag_interval_array():
    Choice("a", ("a", "b")).check("b", "c")
    with pytest.raises(ValueError, match=r"c must be one of \['a', 'b'\], found 'z'"):
        Choice("a", ("a", "b")).check("z", "c")
    with pytest.raises(TypeError):
        Choice("a", ("a", "b")).check(1, "c")
    Flag(True).check(False, "f")
    with pytest.raises(TypeError, match="f must be True or False"):
        Flag(True).check(1, "f")
    Interval(None).check([0.1, 0.1], "b")
    for bad in ([0.0, 1.0], [2.0, 1.0], [1.0], "ab", [1.0, math.inf]):
        with pytest.raises(ValueError, match="b must be a pair"):
            Interval(None).check(bad, "b")
    Array(None).check(np.zeros(3), "init")
    with pytest.raises(TypeError):
        Array(None).check("zeros", "init")


def test_resolver_checks_given_values_and_lists_unknown():
    declared = {"seed": SHARED["seed"], "k": Integer(4, low=1)}
    assert resolve_options("m", declared, {"k": 2}) == {"seed": 0, "k": 2}
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['kk'\]; it accepts \['k', 'seed'\]"):
        resolve_options("m", declared, {"kk": 2})
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        resolve_options("m", declared, {"seed": -1})


def test_every_registered_option_is_declared_and_its_default_valid():
    assert method_names()
    for name, m in METHODS.items():
        for opt, p in m.params.items():
            p.check(p.default, opt, m.options)  # the registry checked this too; a new method cannot skip it
            assert p.describe()


def test_a_default_contradicted_by_a_given_option_is_refused():
    from solvers import BQM, solve

    bqm = BQM(-np.eye(40))
    with pytest.raises(ValueError, match=r"max_window \(its default\) must be an integer >= window \(40\), found 32"):
        solve(bqm, "lns", window=40)
    assert solve(bqm, "lns", window=40, max_window=40).energy == -40.0


def test_a_width_dependent_default_is_resolved_at_each_width():
    """anneal's num_reads: 128 up to 64 variables, then 128 (64/n)^2 rounded, at least 8 (the
    values below worked out by hand from that rule); a given value is never replaced."""
    m = METHODS["anneal"]
    for n, reads in ((1, 128), (64, 128), (65, 124), (100, 52), (128, 32), (181, 16), (256, 8), (384, 8), (4608, 8)):
        assert m.resolve_options({}, n)["num_reads"] == reads
    assert m.resolve_options({"num_reads": 3}, 384)["num_reads"] == 3
    left = m.resolve_options({})["num_reads"]  # without a width: left for each row of a layer
    assert isinstance(left, ByWidth) and left(100) == 52


def test_the_front_door_gives_each_qubo_and_each_row_its_width_s_default(monkeypatch):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(100, 100))
    r = solve(BQM(A @ A.T / 100, rng.normal(size=100)), "anneal", num_sweeps=5)
    assert r.info["reads"] == 52
    # a layer whose second row has 64 of its 100 weights clipped at the grid's top (no variable):
    # widths 99 (the largest weight of row 0 sits on the grid's end) and 36
    W = rng.normal(size=(2, 100)) * 0.1
    grid = fit_grid(W, bits=4)
    W[1, :64] = 2 * grid.scale[1] * grid.qmax
    p = LayerProblem(W, grid, X=rng.normal(size=(300, 100)))
    seen = []
    real = anneal_module._sample

    def spy(sampler, bqm, **kw):
        seen.append((bqm.n, kw["num_reads"]))
        return real(sampler, bqm, **kw)

    monkeypatch.setattr(anneal_module, "_sample", spy)
    solve(p, "anneal", num_sweeps=5)
    assert [len(f) for f in p.free] == [99, 36]
    assert sorted(seen) == [(36, 128), (99, 53)]  # 128 (64/99)^2 = 53.5


def test_a_width_rule_must_give_an_accepted_value_at_every_width():
    bad = ByWidth(lambda n: 8 if n < 1000 else 0, "8 below 1000 variables, then 0")
    with pytest.raises(ValueError, match=r"num_reads \(at width 1024\) must be an integer >= 1"):
        Integer(bad, low=1).check(bad, "num_reads")
    with pytest.raises(ValueError, match="default of k"):
        register("_bad_width_rule", kind="qubo", summary="never registered", options={"k": Integer(bad, low=1)})
    assert "_bad_width_rule" not in METHODS

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import make_multi_exit  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

import eeopt  # noqa: E402
from eeopt import plot  # noqa: E402


@pytest.fixture
def data():
    logits, labels = make_multi_exit(n=400, n_exits=4, seed=2)
    return eeopt.ExitData.from_logits(logits, labels, costs=[1, 2, 3, 4])


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_front_plot_draws_each_method_the_oracle_and_the_final_exit(data, tmp_path):
    fronts = [eeopt.pareto_front(data, method=m) for m in ("maxprob", "patience")]
    ax = plot.plot_fronts(
        fronts, oracle=eeopt.oracle_front(data), final=(4.0, 0.9), cost_units="GFLOPs"
    )
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["maxprob", "patience", "oracle", "final exit"]
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), fronts[0].mean_costs)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), 100 * fronts[0].accuracies)
    assert ax.get_xlabel() == "Mean cost per sample (GFLOPs)"
    assert ax.get_ylabel() == "Accuracy (%)"
    assert ax.get_lines()[0].get_color() != ax.get_lines()[1].get_color()
    for suffix in ("png", "pdf", "svg"):
        ax.figure.savefig(tmp_path / f"front.{suffix}")
        assert (tmp_path / f"front.{suffix}").stat().st_size > 1000
    assert (tmp_path / "front.pdf").read_bytes().startswith(b"%PDF")


def test_costs_are_drawn_in_an_engineering_unit(data):
    front = eeopt.pareto_front(data, method="maxprob")
    scaled = eeopt.Front("maxprob", front.mean_costs * 1e6, front.accuracies, front.parameters, "t")
    ax = plot.plot_fronts([scaled], final=(4e6, 0.9), cost_units="FLOPs")
    assert ax.get_xlabel() == "Mean cost per sample (MFLOPs)"
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), front.mean_costs)


def test_every_method_keeps_its_colour_and_marker_across_figures(data):
    methods = ["patience", "maxprob", "beem-a"]  # not alphabetical: order must not matter
    fronts = {m: eeopt.pareto_front(data, method=m) for m in methods}
    front_colors = {
        line.get_label(): to_hex(line.get_color()) for line in plot.plot_fronts(fronts).get_lines()
    }
    table = eeopt.compare(data, methods[::-1], budgets=[2.5, 3.5], verbose=False)
    ax = plot.plot_comparison(table)
    comparison_colors = {
        c.get_label(): to_hex(c.lines[0].get_color()) for c in ax.containers if c.get_label()
    }
    results = {m: eeopt.fit(data, method=m, budget=3.5).evaluate(data) for m in methods}
    bars = plot.plot_exit_distribution(results, kind="grouped")
    bar_colors = {c.get_label(): to_hex(c.patches[0].get_facecolor()) for c in bars.containers}
    for m in methods:
        expected = plot.method_style(m).color.lower()
        assert front_colors[m] == comparison_colors[m] == bar_colors[m] == expected
    assert len({plot.method_style(m).color for m in eeopt.method_names()}) == 8
    assert len({plot.method_style(m).marker for m in eeopt.method_names()}) == 8


def test_unknown_names_get_a_deterministic_dashed_style():
    style = plot.method_style("my-method")
    assert style == plot.method_style("my-method") and style.linestyle == "--"
    assert style.marker not in {plot.method_style(m).marker for m in eeopt.method_names()}


def test_stacked_exit_bars_match_the_fractions(data):
    results = {
        m: eeopt.fit(data, method=m, budget=2.5).evaluate(data) for m in ("maxprob", "msdnet")
    }
    ax = plot.plot_exit_distribution(results)
    labels = {t.get_position()[1]: t.get_text() for t in ax.get_yticklabels()}
    for k, container in enumerate(ax.containers):
        for patch in container.patches:
            method = labels[patch.get_y() + patch.get_height() / 2]
            assert patch.get_width() == pytest.approx(100 * results[method].exit_fractions[k])
    assert [labels[y] for y in sorted(labels, reverse=True)] == ["maxprob", "msdnet"]  # top down
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"exit {k}" for k in range(4)]


def test_grouped_exit_bars_number_exits_from_zero(data):
    results = {m: eeopt.fit(data, method=m, budget=2.5).evaluate(data) for m in ("maxprob",)}
    ax = plot.plot_exit_distribution(results, kind="grouped")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2", "3"]
    np.testing.assert_allclose(
        [p.get_height() for p in ax.patches], 100 * results["maxprob"].exit_fractions
    )


def test_score_separation_densities_have_area_one_and_exits_from_zero(data):
    axes = plot.plot_score_separation(data, "maxprob")
    assert len(axes) == data.n_exits
    for k, ax in enumerate(axes):
        assert ax.get_title().startswith(f"Exit {k} ")
        for container in ax.containers:
            area = sum(p.get_height() * p.get_width() for p in container.patches)
            assert area == pytest.approx(1.0)


def test_score_separation_counts_cover_every_sample(data):
    for scale in ("count", "log"):
        axes = plot.plot_score_separation(data, "maxprob", scale=scale)
        for ax in axes:
            assert sum(p.get_height() for p in ax.patches) == data.n_samples
        assert (axes[0].get_yscale() == "log") == (scale == "log")


def test_score_separation_rejects_scores_of_the_wrong_shape(data):
    with pytest.raises(ValueError, match="scores"):
        plot.plot_score_separation(data, np.zeros((3, 3)))


def test_front_plot_takes_a_single_front(data):
    front = eeopt.pareto_front(data, method="maxprob")
    ax = plot.plot_fronts(front)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), front.mean_costs)
    assert line.get_label() == "maxprob"
    with pytest.raises(ValueError, match="scale"):
        plot.plot_score_separation(data, "maxprob", scale="loud")


def test_theorem_axis_is_clipped_and_the_clipped_bound_written(data):
    from eeopt import theory

    report = theory.theorem_3_1(eeopt.fit(data, method="beem-a"), data)
    report.bound[-1] = 1.0  # a bound of 100%, as where almost nobody leaves
    ax = plot.plot_theorem(report)
    top = ax.get_ylim()[1]
    seen = max(np.nanmax(report.q), np.nanmax(report.measured_error), report.p)
    assert top < 100 and top >= 100 * seen
    bound_line = ax.get_lines()[0]
    assert bound_line.get_ydata().max() <= top
    assert "100%" in [t.get_text() for t in ax.texts]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "2"]
    unclipped = plot.plot_theorem(report, clip=False)
    assert unclipped.get_ylim()[1] == pytest.approx(102)

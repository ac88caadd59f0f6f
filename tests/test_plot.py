import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import make_multi_exit  # noqa: E402

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
    np.testing.assert_allclose(ax.get_lines()[0].get_xdata(), fronts[0].costs)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), 100 * fronts[0].accuracies)
    assert ax.get_xlabel() == "Mean cost per sample (GFLOPs)"
    assert ax.get_ylabel() == "Accuracy (%)"
    assert ax.get_lines()[0].get_color() != ax.get_lines()[1].get_color()
    for suffix in ("png", "pdf", "svg"):
        ax.figure.savefig(tmp_path / f"front.{suffix}")
        assert (tmp_path / f"front.{suffix}").stat().st_size > 1000
    assert (tmp_path / "front.pdf").read_bytes().startswith(b"%PDF")


def test_exit_distribution_bars_match_the_fractions(data):
    results = {
        m: eeopt.fit(data, method=m, budget=2.5).evaluate(data) for m in ("maxprob", "msdnet")
    }
    ax = plot.plot_exit_distribution(results)
    heights = [p.get_height() for p in ax.patches]
    expected = np.concatenate([100 * r.exit_fractions for r in results.values()])
    np.testing.assert_allclose(heights, expected)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4"]


def test_score_separation_has_a_panel_per_exit_with_both_groups(data):
    axes = plot.plot_score_separation(data, "maxprob")
    assert len(axes) == data.n_exits
    for k, ax in enumerate(axes):
        counts = sum(p.get_height() for p in ax.patches)
        assert counts == data.n_samples  # correct + wrong histograms cover every sample
        assert ax.get_title() == f"Exit {k + 1}"


def test_score_separation_rejects_scores_of_the_wrong_shape(data):
    with pytest.raises(ValueError, match="scores"):
        plot.plot_score_separation(data, np.zeros((3, 3)))


def test_front_plot_takes_a_single_front(data):
    front = eeopt.pareto_front(data, method="maxprob")
    ax = plot.plot_fronts(front)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), front.mean_costs)
    assert line.get_label() == "maxprob"

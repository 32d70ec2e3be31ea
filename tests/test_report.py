"""The sweep report's plot: bars for categorical values, lines for numeric, log axis for lr."""

import matplotlib.pyplot as plt
import pytest
from matplotlib.container import BarContainer

from alexlab.report import figure

TOP1 = {
    ("sgd", "0.001"): 0.5,
    ("sgd", "0.01"): 0.9,
    ("adamw", "0.001"): 0.8,
    ("adamw", "0.01"): 0.6,
}


def rows(keys: tuple[str, str]) -> list[dict]:
    return [{keys[0]: a, keys[1]: b, "val top-1": v} for (a, b), v in TOP1.items()]


def test_categorical_values_are_bars_grouped_by_the_second_key():
    fig = figure(["optimizer", "optimizer.lr"], rows(("optimizer", "optimizer.lr")))
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert not ax.lines and len(bars) == 2  # one bar set per lr, no connecting line
    assert [t.get_text() for t in ax.get_xticklabels()] == ["adamw", "sgd"]
    heights = {
        text.get_text(): [b.get_height() for b in c]
        for c, text in zip(bars, ax.get_legend().get_texts(), strict=True)
    }
    assert heights == {"optimizer.lr=0.001": [0.8, 0.5], "optimizer.lr=0.01": [0.6, 0.9]}
    plt.close(fig)


def test_numeric_values_are_lines_on_a_log_axis_for_lr():
    fig = figure(["optimizer.lr", "optimizer"], rows(("optimizer", "optimizer.lr")))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and not ax.containers
    lines = {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines
    }
    assert lines == {
        "optimizer=adamw": ([0.001, 0.01], [0.8, 0.6]),
        "optimizer=sgd": ([0.001, 0.01], [0.5, 0.9]),
    }
    plt.close(fig)


@pytest.mark.parametrize(
    ("key", "scale"), [("optimizer.weight_decay", "log"), ("data.batch_size", "linear")]
)
def test_log_axis_only_for_lr_and_weight_decay(key, scale):
    values = ["1", "10", "100"]
    fig = figure([key], [{key: v, "val top-1": 0.5} for v in values])
    assert fig.axes[0].get_xscale() == scale and len(fig.axes[0].lines) == 1
    plt.close(fig)

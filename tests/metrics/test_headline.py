"""A split's metrics as printed and tabled: values with their intervals."""

from __future__ import annotations

from jaxtl.metrics import headline

SPLIT = {"kappa": 0.81234, "kappa_ci": [0.7, 0.9], "accuracy": 0.5, "accuracy_ci": None,
         "recall": {"a": 0.25, "b": 0.75}, "recall_ci": {"a": [0.1, 0.4], "b": None},
         "count": 12, "ci_level": 0.9, "bootstrap_samples": 20, "bootstrap_valid": {"kappa": 20}}


def test_a_value_has_its_interval_where_the_split_holds_one():
    assert headline.metric_text(SPLIT, "kappa") == "0.812 [0.700, 0.900]"
    assert headline.metric_text(SPLIT, "accuracy") == "0.500"
    assert headline.metric_text(SPLIT, "recall.a") == "0.250 [0.100, 0.400]"
    assert headline.metric_text(SPLIT, "recall.b") == "0.750"
    assert headline.metric_text(SPLIT, "missing") == ""
    assert headline.metric_text(SPLIT, "count") == "12"


def test_the_line_names_each_metric_and_the_level():
    assert (headline.line(SPLIT, ["kappa", "accuracy", "loss"])
            == "kappa 0.812 [0.700, 0.900], accuracy 0.500 (90% CI)")
    assert headline.line(SPLIT, ["accuracy"]) == "accuracy 0.500"  # no interval, no level


def test_splits_table_has_a_row_per_metric_and_a_column_per_scored_split():
    header, rows = headline.splits_table({"val": SPLIT, "test": None})
    assert header == ["metric", "val [90% CI]"]
    assert [row[0] for row in rows] == ["kappa", "accuracy", "count", "recall.a", "recall.b"]
    assert rows[0] == ["kappa", "0.812 [0.700, 0.900]"]


def test_text_and_markdown_tables():
    text = headline.text_table(["a", "long name"], [["xyz", 1], ["w", None]])
    assert text.splitlines() == ["a    long name", "---  ---------", "xyz  1", "w"]
    assert headline.markdown_table(["a", "b"], [["x|y", None]]).splitlines() == [
        "| a | b |", "| --- | --- |", "| x\\|y |  |"]

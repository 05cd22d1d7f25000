"""Exact evaluation: metrics from scikit-learn over every example of a split."""

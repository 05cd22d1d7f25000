"""Exact evaluation: metrics of a task from scikit-learn, with patient-resampled intervals;
calibration, operating points and paired comparisons of two runs on the same images."""

from jaxtl.metrics.classification import metric_function, task_metrics

__all__ = ["metric_function", "task_metrics"]

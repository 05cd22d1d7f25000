"""Exact evaluation: metrics of a task from scikit-learn, with patient-resampled intervals."""

from jaxtl.metrics.task import task_metrics

__all__ = ["task_metrics"]

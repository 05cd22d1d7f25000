"""Scoring a split: every example once, then the task's metrics."""

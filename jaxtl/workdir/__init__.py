"""The run folder: its file names and files, checkpoints and the metrics log."""

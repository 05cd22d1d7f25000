"""The run folder: its file names and files, checkpoints and the metrics log; and the folder
format of converted pretrained checkpoints (`pretrained`), which runs start from and export."""

"""Datasets: one package per dataset family, plus what every dataset shares.

Shared: records.py (Record, DatasetSplits), registry.py (DatasetSpec, lookup by name),
loading.py (config -> splits), demo_data.py, cache.py, splits.py, sampling.py, decoders.py,
transforms.py, pipeline.py (Grain) and prepared.py (data decoded once into ArrayRecord shards). Per dataset: eyepacs/, chest/ (CheXpert and
ChestX-ray14), consep/, bigearthnet/, each with reader, demo writer and spec.
"""

"""Segmentation runs (a `jaxtl.tasks.SegmentationTask`: CoNSeP nuclei): whole-tile inference
and scoring. The data (crops, tiles) come from the dataset's `SegmentationData`, the model from
jaxtl/models/unet.py, the metrics from jaxtl/metrics/segmentation.py; training is the common
loop (jaxtl.train) with the run built by jaxtl.run.

inference.py  sliding windows over a whole tile, blended, jit-compiled
scoring.py    a split's tiles -> predicted classes and instances -> metrics; final results,
              predicted masks and overlays in the run folder
"""

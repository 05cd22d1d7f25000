"""Model zoo: backbones, classifier heads and the registry that combines them."""

from jaxtl.models.classifier import Classifier
from jaxtl.models.family import Architecture, Stage, TimmCheckpoint
from jaxtl.models.heads import HEADS
from jaxtl.models.registry import (create_model, families, gradcam_stage, list_models,
                                   min_input_size, register, stages_of, timm_checkpoint)

__all__ = ["HEADS", "Architecture", "Classifier", "Stage", "TimmCheckpoint", "create_model",
           "families", "gradcam_stage", "list_models", "min_input_size", "register", "stages_of",
           "timm_checkpoint"]

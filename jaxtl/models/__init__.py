"""Model zoo: backbones, classifier heads, a UNet for segmentation and the registry that
combines them."""

from jaxtl.models.classifier import Classifier
from jaxtl.models.family import Architecture, Stage, TimmCheckpoint
from jaxtl.models.heads import HEADS
from jaxtl.models.registry import (create_backbone, create_model, families, gradcam_stage,
                                   list_models, min_input_size, register, stages_of,
                                   timm_checkpoint)
from jaxtl.models.unet import UNet, create_unet

__all__ = ["HEADS", "Architecture", "Classifier", "Stage", "TimmCheckpoint", "UNet",
           "create_backbone", "create_model", "create_unet", "families", "gradcam_stage",
           "list_models", "min_input_size", "register", "stages_of", "timm_checkpoint"]

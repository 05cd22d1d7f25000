"""Model zoo: backbones, classifier heads, a UNet for segmentation and the registry that
combines them."""

from jaxtl.models.classifier import BACKBONE, HEAD, Classifier
from jaxtl.models.family import Architecture, Stage, TimmCheckpoint
from jaxtl.models.heads import HEADS
from jaxtl.models.registry import (
                                   create_backbone,
                                   create_model,
                                   families,
                                   feature_maps,
                                   feature_names,
                                   gradcam_feature,
                                   gradcam_stage,
                                   list_models,
                                   min_input_size,
                                   register,
                                   stages_of,
                                   timm_checkpoint,
)
from jaxtl.models.taps import LOGITS, PRE_LOGITS, STEM, perturbations
from jaxtl.models.unet import UNet, create_unet

__all__ = ["BACKBONE", "HEAD", "HEADS", "LOGITS", "PRE_LOGITS", "STEM", "Architecture",
           "Classifier", "Stage", "TimmCheckpoint", "UNet", "create_backbone", "create_model",
           "create_unet", "families", "feature_maps", "feature_names", "gradcam_feature",
           "gradcam_stage", "list_models", "min_input_size", "perturbations", "register",
           "stages_of", "timm_checkpoint"]

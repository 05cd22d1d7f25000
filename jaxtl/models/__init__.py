"""Model zoo: backbones, classifier heads and the registry that combines them."""

from jaxtl.models.classifier import Classifier
from jaxtl.models.heads import HEADS
from jaxtl.models.registry import create_model, list_models, min_input_size, register_backbone

__all__ = ["HEADS", "Classifier", "create_model", "list_models", "min_input_size",
           "register_backbone"]

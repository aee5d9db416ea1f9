"""Segmentation models: backbones, DeepLabV3+ decoder, heads, and the ELN."""

from training.models.build import build_eln, build_model
from training.models.deeplab import SegmentationModel
from training.models.eln import ErrorLocalizationNetwork, eln_inputs

__all__ = [
    "ErrorLocalizationNetwork",
    "SegmentationModel",
    "build_eln",
    "build_model",
    "eln_inputs",
]

"""Build models from ``params.yaml``'s ``model`` section; class counts come from the taxonomy."""

from __future__ import annotations

from segloop.params import ModelParams
from training.methods.ecoc import build_codebook
from training.models.deeplab import DeepLabV3PlusDecoder, ProjectionHead, SegmentationModel
from training.models.eln import ErrorLocalizationNetwork
from training.models.heads import ClassifierHead, EcocHead, PrototypeHead, SoftmaxHead
from training.models.resnet import ResNet, load_torchvision_weights
from training.models.tiny import TinyBackbone


def build_backbone(
    name: str, in_channels: int, output_stride: int, tiny_widths: tuple[int, int, int, int]
) -> TinyBackbone | ResNet:
    if name == "tiny":
        return TinyBackbone(in_channels, tiny_widths, output_stride)
    return ResNet(name, in_channels, output_stride)


def build_head(params: ModelParams, num_classes: int) -> ClassifierHead:
    """The classifier head named by ``model.head`` (softmax, ecoc or prototype)."""
    if params.head == "ecoc":
        codebook = build_codebook(
            num_classes, params.ecoc.bits, params.ecoc.min_distance, params.ecoc.seed
        )
        return EcocHead(params.decoder_channels, codebook, params.dropout)
    if params.head == "prototype":
        return PrototypeHead(params.decoder_channels, num_classes, params.prototype_scale)
    return SoftmaxHead(params.decoder_channels, num_classes, params.dropout)


def build_model(params: ModelParams, num_classes: int) -> SegmentationModel:
    backbone = build_backbone(params.backbone, 3, params.output_stride, params.tiny_widths)
    if params.pretrained is not None:
        if not isinstance(backbone, ResNet):
            raise ValueError("model.pretrained needs a ResNet backbone")
        load_torchvision_weights(backbone, params.pretrained)
    decoder = DeepLabV3PlusDecoder(
        backbone.channels,
        params.decoder_channels,
        params.low_level_channels,
        params.aspp_rates,
        params.dropout,
    )
    head = build_head(params, num_classes)
    projection = ProjectionHead(params.decoder_channels, params.projection_dim)
    return SegmentationModel(backbone, decoder, head, projection)


def build_eln(params: ModelParams, num_classes: int) -> ErrorLocalizationNetwork:
    eln = params.eln
    backbone = build_backbone(
        eln.backbone, 3 + num_classes + 1, eln.output_stride, params.tiny_widths
    )
    decoder = DeepLabV3PlusDecoder(
        backbone.channels,
        eln.decoder_channels,
        params.low_level_channels,
        params.aspp_rates,
        params.dropout,
    )
    head = SoftmaxHead(eln.decoder_channels, 1, params.dropout)
    return ErrorLocalizationNetwork(backbone, decoder, head)

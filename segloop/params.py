"""Typed models for ``params.yaml``: every knob of every stage and its default.

Each stage reads its own section through :func:`load_params`; no stage reads raw YAML. Unknown
or mistyped keys are errors that name the key and the file.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from segloop.errors import ParamsError
from segloop.taxonomy import CITYSCAPES, Taxonomy

CONDITIONS = ("day", "dusk", "fog", "rain")


class StrictModel(BaseModel):
    """Base for every params section: unknown keys are errors, defaults are validated."""

    model_config = ConfigDict(extra="forbid", validate_default=True, protected_namespaces=())


class TaxonomyParams(StrictModel):
    """The class set. ``cityscapes`` is built in; otherwise list ``classes`` and ``palette``."""

    name: str = "cityscapes"
    classes: list[str] | None = None
    palette: list[tuple[int, int, int]] | None = None

    @model_validator(mode="after")
    def _custom_needs_both(self) -> TaxonomyParams:
        if (self.classes is None) != (self.palette is None):
            raise ValueError("a custom taxonomy needs both 'classes' and 'palette'")
        if self.classes is None and self.name != CITYSCAPES.name:
            raise ValueError(f"unknown built-in taxonomy {self.name!r}; give classes and palette")
        return self

    def build(self) -> Taxonomy:
        if self.classes is None or self.palette is None:
            return CITYSCAPES
        return Taxonomy(self.name, tuple(self.classes), tuple(self.palette))


def _conditions_mix(value: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(value) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"unknown conditions {unknown}; known: {list(CONDITIONS)}")
    if any(weight < 0 for weight in value.values()) or sum(value.values()) <= 0:
        raise ValueError("condition weights must be >= 0 with a positive sum")
    return value


class SynthParams(StrictModel):
    """The embedded procedural driving-scene dataset (``segloop data synth``)."""

    seed: int = 0
    height: int = Field(128, ge=32)
    width: int = Field(256, ge=64)
    train_frames: int = Field(3000, ge=1)
    val_frames: int = Field(300, ge=1)
    frames_per_city: int = Field(500, ge=1)
    train_conditions: dict[str, float] = {"day": 0.4, "dusk": 0.2, "fog": 0.2, "rain": 0.2}
    val_conditions: dict[str, float] = {"day": 0.25, "dusk": 0.25, "fog": 0.25, "rain": 0.25}
    workers: int = Field(2, ge=1)
    # Short driving clips (clips/clip_NNN.mp4) for video labeling; 0 writes none.
    clips: int = Field(2, ge=0)
    clip_frames: int = Field(48, ge=1)
    clip_fps: float = Field(12.0, gt=0)

    _check_train = field_validator("train_conditions")(_conditions_mix)
    _check_val = field_validator("val_conditions")(_conditions_mix)


class SplitParams(StrictModel):
    """How ``segloop data split`` divides the train frames into labeled and unlabeled."""

    fraction: float = Field(0.125, gt=0, le=1)
    seed: int = 0
    # Labeled frames are drawn only from frames of these conditions (needs the dataset's
    # conditions.csv); null draws them from every frame.
    labeled_conditions: list[str] | None = ["day", "dusk"]
    # For a folders layout without images/val: the share of frames held out for validation.
    val_fraction: float = Field(0.1, gt=0, lt=1)
    dir: Path = Path("data/splits")

    @field_validator("fraction", mode="before")
    @classmethod
    def _parse_fraction(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return float(Fraction(value.strip()))
            except (ValueError, ZeroDivisionError) as exc:
                raise ValueError(f"not a fraction: {value!r} (use 0.125 or 1/8)") from exc
        return value

    @field_validator("labeled_conditions")
    @classmethod
    def _known_conditions(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            _conditions_mix(dict.fromkeys(value, 1.0))
        return value


class DataParams(StrictModel):
    root: Path = Path("data/embedded")
    # 'segloop data prepare' (the loop's data stage) renders the embedded dataset into root
    # when true; set false to point root at a real dataset, which is read in place.
    generate: bool = True
    layout: Literal["cityscapes", "folders"] = "cityscapes"
    taxonomy: TaxonomyParams = TaxonomyParams()
    # "error": a bad file stops the run with its name; "skip": it is left out and counted.
    on_bad_file: Literal["error", "skip"] = "error"
    synth: SynthParams = SynthParams()
    split: SplitParams = SplitParams()


class ELNParams(StrictModel):
    """The Error Localization Network: a DeepLabV3+ on image + probabilities + entropy."""

    backbone: Literal["tiny", "resnet18", "resnet34", "resnet50", "resnet101"] = "tiny"
    output_stride: Literal[8, 16, 32] = 8
    decoder_channels: int = Field(48, ge=8)


class EcocParams(StrictModel):
    """ECOC head codebook: ``bits`` per class with row Hamming distance >= ``min_distance``."""

    bits: int = Field(40, ge=2)
    min_distance: int = Field(8, ge=1)
    seed: int = 0


class ModelParams(StrictModel):
    backbone: Literal["tiny", "resnet18", "resnet34", "resnet50", "resnet101"] = "tiny"
    # A torchvision-format ResNet state dict (e.g. ImageNet weights) for the backbone.
    pretrained: Path | None = None
    output_stride: Literal[8, 16, 32] = 8
    # ASPP atrous rates at the configured output stride (DeepLabV3+ uses 6/12/18 at OS16 on
    # 512px crops; small frames need small rates or the branches see only padding).
    aspp_rates: tuple[int, int, int] = (2, 4, 6)
    decoder_channels: int = Field(64, ge=8)
    low_level_channels: int = Field(24, ge=4)
    head: Literal["softmax", "ecoc", "prototype"] = "softmax"
    ecoc: EcocParams = EcocParams()
    # Scale s of the prototype (cosine) head's logits s * cos(f, p_c) (DeS4; digest default).
    prototype_scale: float = Field(10.0, gt=0)
    projection_dim: int = Field(64, ge=4)
    dropout: float = Field(0.1, ge=0, lt=1)
    tiny_widths: tuple[int, int, int, int] = (16, 32, 64, 128)
    eln: ELNParams = ELNParams()


class RareClassSamplingParams(StrictModel):
    """DAFormer's rare-class sampling of labeled frames (training/rare_class_sampling.py)."""

    enabled: bool = False
    temperature: float = Field(0.01, gt=0)  # T of P(c) = softmax((1 - f_c) / T)
    min_pixels: int = Field(32, ge=0)  # a frame holds class c above this many pixels
    min_crop_ratio: float = Field(0.5, ge=0)  # recrop until c has > ratio * min_pixels


class TrainParams(StrictModel):
    out_dir: Path = Path("runs/baseline")
    # "split": the labeled split; "full": every train frame with its ground truth (the
    # fully supervised upper bound for benchmarks, never used by the loop).
    labels: Literal["split", "full"] = "split"
    steps: int = Field(800, ge=1)
    batch_size: int = Field(8, ge=1)
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    poly_power: float = Field(0.9, ge=0)
    warmup_steps: int = Field(50, ge=0)
    amp: bool = True
    grad_clip: float | None = Field(None, gt=0)
    crop: tuple[int, int] = (128, 256)
    scale: tuple[float, float] = (0.75, 1.5)
    hflip: bool = True
    color_jitter: float = Field(0.2, ge=0, le=1)
    rare_class_sampling: RareClassSamplingParams = RareClassSamplingParams()
    # Supervised pixel weights n_c^-p over the batch's labeled pixels (0: off, every pixel 1;
    # 0.5: 1/sqrt of the class's pixel count; 1: every class present weighs the same).
    class_balance: float = Field(0.0, ge=0, le=1)
    checkpoint_every: int = Field(200, ge=1)
    eval_every: int = Field(200, ge=1)
    log_every: int = Field(10, ge=1)
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)
    # Keep freed host memory in glibc's heap instead of unmapping blocks over 32 MiB, which
    # every step would page-fault in again (training/host.py; results are unchanged).
    keep_host_memory: bool = True
    # Benchmarks only: read the pool's hidden ground truth to measure the pixels the unlabeled
    # terms keep (precision and coverage in history.jsonl and metrics.json). Training never
    # sees it; the pool must have masks (the embedded dataset does).
    measure_pseudo_labels: bool = False


class StrongViewParams(StrictModel):
    """The student's strong view: photometric perturbation + CutMix (shared geometry)."""

    jitter: float = Field(0.4, ge=0, le=1)
    grayscale_p: float = Field(0.2, ge=0, le=1)
    blur_p: float = Field(0.5, ge=0, le=1)
    cutmix_p: float = Field(0.5, ge=0, le=1)
    cutmix_area: float = Field(0.5, gt=0, lt=1)


class U2PLParams(StrictModel):
    """U2PL+: entropy partition, adaptive lambda_u, negatives from unreliable pixels."""

    enabled: bool = False
    alpha0: float = Field(0.2, ge=0, lt=1)  # initial unreliable fraction, annealed to 0
    eta: float = Field(1.0, gt=0)
    sce_weight: float = Field(0.0, ge=0)  # xi_2 of the symmetric CE (U2PL+ uses 0.1)
    denoise: bool = False  # prototypical denoising of teacher probabilities (U2PL+)
    contrast_weight: float = Field(0.1, ge=0)  # lambda_c
    anchors: int = Field(256, ge=1)
    negatives: int = Field(50, ge=1)
    tau: float = Field(0.5, gt=0)
    rank_low: int = Field(3, ge=1)
    rank_high: int = Field(20, ge=2)
    delta_p: float = Field(0.3, ge=0, lt=1)
    queue_size: int = Field(2048, ge=1)
    prototype_momentum: float = Field(0.999, ge=0, lt=1)


class EcocTrainingParams(StrictModel):
    """Reliable bit mining and loss weights of the ECOC head."""

    candidates: int = Field(8, ge=1)
    bit_threshold: float = Field(0.95, gt=0.5, le=1)
    pcd_weight: float = Field(5.0, ge=0)
    pcc_weight: float = Field(2.0, ge=0)
    tau: float = Field(0.5, gt=0)


class ELNTrainingParams(StrictModel):
    """ELN: constrained auxiliary decoders, the error localizer, masking and contrast."""

    enabled: bool = False
    aux_alphas: list[float] = [20.0, 50.0]
    mask: bool = True  # drop pseudo-labels the ELN flags as wrong
    # The paper learns ELN on labeled data and then uses it; the authors' code keeps training
    # it in the semi-supervised stage. Default: keep training (labeled data only).
    train_during_ssl: bool = True
    # Train only the ELN and its auxiliary decoders, on the model of methods.init_from kept
    # frozen in eval mode: fits an ELN to a model trained without one, or refits a stale one.
    fit_only: bool = False
    # Eq. 10's pixel contrast; the paper weighs it 1.0. Off by default: at 1.0 it cost the
    # benchmark loop 2.8 mIoU in r1 (docs/RESULTS.md, "What cost day and dusk in r1").
    contrast_weight: float = Field(0.0, ge=0)
    contrast_tau: float = Field(0.5, gt=0)
    contrast_samples: int = Field(512, ge=2)


class DeS4Params(StrictModel):
    """DeS4: decoupled teacher decoder over an EMA encoder, MES prototype updates."""

    enabled: bool = False
    lambda_b: float = Field(1.0, ge=0)
    lambda_u: float = Field(1.5, ge=0)
    encoder_ema: float = Field(0.99, ge=0, lt=1)
    prototype_momentum: float = Field(0.99, ge=0, lt=1)
    zones: int = Field(5, ge=1)
    alpha: float = Field(0.1, gt=0)


class PreciseBNParams(StrictModel):
    """After a semi-supervised run (``methods.unlabeled``), recompute the saved model's
    BatchNorm statistics on clean labeled frames and keep that model where it validates at
    least as well (training/precise_bn.py). It does not change training, only ``best.pt``."""

    enabled: bool = True
    frames: int = Field(512, ge=1)  # the first this many labeled frames


class AlignmentParams(StrictModel):
    """Distribution alignment of the teacher's probabilities before they become pseudo-labels
    (ReMixMatch §3.2, per group; training/methods/alignment.py)."""

    enabled: bool = False
    # condition: one running marginal per condition of the dataset's conditions.csv; pool: one
    # for the whole pool; auto: condition where the dataset has conditions.csv, else pool
    groups: Literal["auto", "condition", "pool"] = "auto"
    momentum: float = Field(0.99, ge=0, lt=1)  # per-frame decay of each group's running mean


class MethodsParams(StrictModel):
    """Semi-supervised components on top of supervised training; all off by default."""

    unlabeled: bool = False  # the online mean-teacher branch over the unlabeled split
    init_from: Path | None = None  # warm start (e.g. the supervised round-0 best.pt)
    unlabeled_batch_size: int = Field(8, ge=1)
    unsup_weight: float = Field(1.0, ge=0)
    rampup_steps: int = Field(200, ge=0)
    teacher_decay: float = Field(0.99, ge=0, lt=1)
    evaluate: Literal["teacher", "student"] = "teacher"
    confidence_threshold: float = Field(0.0, ge=0, lt=1)  # mean-teacher pixel filter; 0: off
    alignment: AlignmentParams = AlignmentParams()
    strong: StrongViewParams = StrongViewParams()
    u2pl: U2PLParams = U2PLParams()
    ecoc: EcocTrainingParams = EcocTrainingParams()
    eln: ELNTrainingParams = ELNTrainingParams()
    des4: DeS4Params = DeS4Params()
    precise_bn: PreciseBNParams = PreciseBNParams()
    # Offline pseudo-labels (e.g. DARS-selected by 'segloop select'): a folder of trainId PNGs
    # named like the unlabeled frames; mixed into labeled batches at pseudo_fraction.
    pseudo_labels: Path | None = None
    pseudo_fraction: float = Field(0.5, ge=0, le=1)


class SelectionParams(StrictModel):
    """Offline pseudo-label selection between rounds (``segloop predict`` / ``select``)."""

    predictions: Path = Path("runs/pool")  # label/, confidence/, reliability/ of the pool
    out: Path = Path("runs/pseudo")  # selected pseudo-label PNGs + selection.json
    alpha: float = Field(0.2, gt=0, le=1)  # DARS budget: share of all pool pixels to keep
    use_reliability: bool = True  # also drop pixels the ELN flags (when predicted)
    reliability_threshold: float = Field(0.5, ge=0, le=1)
    seed: int = 0
    annotate_next: int = Field(100, ge=0)  # least reliable frames listed for human labeling


class EvalParams(StrictModel):
    # Defaults to <train.out_dir>/best.pt.
    checkpoint: Path | None = None
    split: Literal["val", "labeled", "unlabeled"] = "val"
    # Sliding-window size; null uses train.crop. Frames larger than the window are tiled.
    window: tuple[int, int] | None = None
    overlap: float = Field(1 / 3, ge=0, lt=1)
    batch_size: int = Field(4, ge=1)
    # Defaults to <train.out_dir>/eval.json.
    out: Path | None = None


BackendName = Literal["ort-cpu", "ort-cuda", "ort-trt", "trt"]


class TensorRTParams(StrictModel):
    """Native TensorRT engines (``segloop export --engine trt``), built strongly typed: the
    precision lives in the ONNX (FP16 conversion or INT8 Q/DQ), not in builder flags."""

    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    calibration_frames: int = Field(64, ge=1)  # pool frames that calibrate INT8 Q/DQ scales
    min_batch: int = Field(1, ge=1)  # the engine's optimisation profile over the batch axis
    opt_batch: int = Field(8, ge=1)
    max_batch: int = Field(16, ge=1)
    workspace_gib: float = Field(4.0, gt=0)
    cache_dir: Path = Path("runs/engine_cache")  # engines and the timing cache, shared

    @model_validator(mode="after")
    def _profile_ordered(self) -> TensorRTParams:
        if not self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError("tensorrt batches must satisfy min_batch <= opt_batch <= max_batch")
        return self


class ExportParams(StrictModel):
    """``segloop export``: ONNX graphs, metadata and the parity gate."""

    checkpoint: Path | None = None  # defaults to <train.out_dir>/best.pt
    out: Path = Path("runs/export")
    # Graph input height x width; null uses train.crop. dynamic_size exports H and W as
    # dynamic axes (any multiple of the output stride); otherwise frames are resized to it.
    input_size: tuple[int, int] | None = None
    dynamic_size: bool = False
    opset: int = Field(17, ge=13, le=21)
    parity_split: Literal["val", "labeled", "unlabeled"] = "val"
    parity_frames: int = Field(16, ge=1)
    parity_min_agreement: float = Field(0.999, ge=0, le=1)
    engine: Literal["onnx", "trt"] = "onnx"
    tensorrt: TensorRTParams = TensorRTParams()


class LabelParams(StrictModel):
    """``segloop label``: the batch labeler over image folders, globs, lists and videos."""

    export_dir: Path = Path("runs/export")
    backend: BackendName = "ort-cpu"
    out: Path = Path("runs/label")
    batch_size: int = Field(8, ge=1)
    # Processes decoding images and video frames. 1 is fastest on a 2-core CPU box, where
    # inference needs both cores (docs/BENCHMARKS.md); raise it where inference runs on a GPU.
    decode_workers: int = Field(1, ge=1)
    write_workers: int = Field(2, ge=1)  # threads encoding and writing PNGs
    # ONNX Runtime intra-op threads on ort-cpu, split between the streams (None: every CPU
    # this process may use; with one stream, ONNX Runtime's default, its physical cores)
    threads: int | None = Field(None, ge=1)
    # Batches labeled at once, each by its own backend instance (None: 2 on ort-cpu, where
    # that beats one session with every thread, docs/BENCHMARKS.md; 1 on the GPU backends)
    streams: int | None = Field(None, ge=1)
    every: int = Field(1, ge=1)  # video: keep every N-th frame
    fps: float | None = Field(None, gt=0)  # video: sample at this rate instead of `every`
    overlays: bool = False  # also write colour overlays (overlay/)
    png_compression: int = Field(1, ge=0, le=9)  # zlib level: 1 is fast and near the best size


class ServeParams(StrictModel):
    """``segloop serve``: the HTTP server over an export directory."""

    export_dir: Path = Path("runs/export")
    backend: BackendName = "ort-cpu"
    host: str = "127.0.0.1"  # loopback unless asked otherwise
    port: int = Field(8080, ge=1, le=65535)
    threads: int | None = Field(None, ge=1)  # ONNX Runtime intra-op threads
    max_batch: int = Field(8, ge=1)  # micro-batching: up to this many frames per run ...
    max_wait_ms: float = Field(5.0, ge=0)  # ... or until the first waited this long
    queue_limit: int = Field(64, ge=1)  # frames waiting beyond this get 503 + Retry-After
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(4096 * 4096, ge=1)
    # The bearer token is read from this environment variable; unset or empty: no auth.
    token_env: str = "SEGLOOP_SERVE_TOKEN"


class TrackingParams(StrictModel):
    """MLflow tracking of the loop. The store is ``MLFLOW_TRACKING_URI`` when set, else
    ``sqlite:///mlflow.db`` at the repository root."""

    enabled: bool = True
    experiment: str = "segloop"
    loop_name: str = "segloop-loop"  # the parent run every round's child run hangs under
    model_name: str = "segloop-labeler"  # registered every round; alias `champion`
    overlays: int = Field(4, ge=0)  # validation overlays logged per round


class LoopParams(StrictModel):
    """The self-training loop (``dvc repro``): what each round labels, and tracking."""

    pool: Path = Path("data/splits/unlabeled.txt")  # list of pool frames labeled each round
    pool_root: Path | None = None  # base of the pool list's relative paths (null: data.root)
    tracking: TrackingParams = TrackingParams()


class RoundParams(StrictModel):
    """One round: its predecessor, where its training starts, and overrides of the other
    sections (nested like them, or as ``section.key: value``) for this round's stages only.

    ``after`` is the path this round's DVC stages wait for: ``data/splits`` for the first
    round, ``rounds/<previous>`` (the whole previous round) for later ones.
    """

    previous: str | None = None
    after: str = "data/splits"
    init: Literal["previous", "scratch"] = "previous"  # warm start from the previous round
    set: dict[str, Any] = {}


# The quick demo loop sized for a 2-core CPU machine (docs/RESULTS.md): small batches and
# short rounds; the ELN is trained in round 0 with one auxiliary decoder (alpha 20; ELN
# Table 5: 70.20 vs 70.52 mIoU with the default two; the step cost of each is in
# docs/RESULTS.md) and then used frozen, as in the ELN paper. Later rounds filter the
# teacher's pseudo-labels online by its confidence, not by the ELN mask (ablation row
# `loop-threshold`, docs/RESULTS.md), after aligning its probabilities per condition to the
# labeled class distribution (row `loop-align`); the ELN's reliability masks the offline
# selection.
_SSL_ROUND = {
    "methods": {
        "eln": {"enabled": True, "train_during_ssl": False, "mask": False},
        "unlabeled": True,
        "unlabeled_batch_size": 4,
        "confidence_threshold": 0.95,
        "alignment": {"enabled": True},
    },
    "train": {"steps": 150, "batch_size": 4},
}
DEFAULT_ROUNDS: dict[str, RoundParams] = {
    "r0": RoundParams(
        set={
            "methods": {"eln": {"enabled": True, "aux_alphas": [20.0]}},
            "train": {"steps": 300, "batch_size": 4},
        }
    ),
    "r1": RoundParams(previous="r0", after="rounds/r0", set=_SSL_ROUND),
    "r2": RoundParams(
        previous="r1", after="rounds/r1", set={**_SSL_ROUND, "selection": {"alpha": 0.5}}
    ),
}


class Params(StrictModel):
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    methods: MethodsParams = MethodsParams()
    selection: SelectionParams = SelectionParams()
    eval: EvalParams = EvalParams()
    export: ExportParams = ExportParams()
    label: LabelParams = LabelParams()
    serve: ServeParams = ServeParams()
    loop: LoopParams = LoopParams()
    rounds: dict[str, RoundParams] = DEFAULT_ROUNDS

    @model_validator(mode="after")
    def _methods_fit_the_model(self) -> Params:
        m = self.methods
        if m.des4.enabled and self.model.head != "prototype":
            raise ValueError("methods.des4 needs model.head: prototype")
        if self.model.head == "prototype" and not m.des4.enabled:
            raise ValueError("model.head: prototype is updated by DeS4; enable methods.des4")
        if m.u2pl.enabled and not m.unlabeled:
            raise ValueError("methods.u2pl needs methods.unlabeled: true")
        if m.alignment.enabled and not m.unlabeled:
            raise ValueError("methods.alignment needs methods.unlabeled: true")
        if m.alignment.enabled and self.model.head == "ecoc":
            raise ValueError(
                "methods.alignment rescales class probabilities; the ECOC head's pseudo-labels "
                "are bit-wise: use model.head softmax or prototype"
            )
        if m.eln.fit_only and not (m.eln.enabled and m.init_from is not None):
            raise ValueError(
                "methods.eln.fit_only fits an ELN to an existing model: it needs "
                "methods.eln.enabled: true and methods.init_from (the model's checkpoint)"
            )
        if m.eln.fit_only and (m.unlabeled or m.pseudo_labels is not None):
            raise ValueError(
                "methods.eln.fit_only learns the model's errors on ground truth: switch off "
                "methods.unlabeled and methods.pseudo_labels"
            )
        if m.u2pl.rank_high <= m.u2pl.rank_low:
            raise ValueError("methods.u2pl.rank_high must exceed rank_low")
        seen: list[str] = []
        for name, round_ in self.rounds.items():
            if round_.previous is None:
                if seen:
                    raise ValueError(f"rounds.{name}: only the first round has no previous")
                if round_.after != "data/splits":
                    raise ValueError(f"rounds.{name}.after must be data/splits (the first round)")
            else:
                if not seen or round_.previous != seen[-1]:
                    raise ValueError(
                        f"rounds.{name}.previous must name the round before it "
                        f"({seen[-1] if seen else 'none: make it the first round'})"
                    )
                if round_.after != f"rounds/{round_.previous}":
                    raise ValueError(f"rounds.{name}.after must be rounds/{round_.previous}")
            seen.append(name)
        return self


def export_input_size(params: Params) -> tuple[int, int]:
    """The exported graphs' input size: ``export.input_size``, or the training crop."""
    return params.export.input_size or params.train.crop


def eval_window(params: Params) -> tuple[int, int]:
    """The evaluation tile size: ``eval.window``, or the training crop when that is null."""
    return params.eval.window or params.train.crop


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid params"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        elif not item["loc"]:
            lines.append(f"  {item['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def _apply_override(tree: dict[str, Any], assignment: str) -> None:
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ParamsError(f"override {assignment!r} is not of the form section.key=value")
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ParamsError(f"override {assignment!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = yaml.safe_load(raw)


def load_params(path: Path | str | None = None, overrides: list[str] | None = None) -> Params:
    """Read, override (``section.key=value``) and validate a params file.

    ``path=None`` starts from the defaults alone; a given path must exist.
    """
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.exists():
            raise ParamsError(f"{path}: params file not found")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ParamsError(f"{path}: the top level must be a mapping of sections")
        tree = loaded or {}
    for assignment in overrides or []:
        _apply_override(tree, assignment)
    try:
        return Params.model_validate(tree)
    except ValidationError as exc:
        raise ParamsError(_format_validation_error(exc, source)) from None


def default_params_path() -> Path | None:
    """``params.yaml`` in the working directory when it exists (the CLI's default)."""
    path = Path("params.yaml")
    return path if path.exists() else None

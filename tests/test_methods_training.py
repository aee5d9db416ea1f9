"""Every method runs end to end in the one training loop, warm-started from a short
supervised round 0 as the loop uses it, and decreases the losses it optimises."""

import json
from pathlib import Path

import pytest
import torch

from segloop.datasets import read_image
from segloop.params import Params, load_params
from segloop.splits import make_split, read_conditions, split_samples, write_split
from segloop.synth import write_dataset
from tests.conftest import tiny_overrides
from training.checkpoint import model_from_checkpoint
from training.methods.filters import combine_filters
from training.precise_bn import frame_batches, recompute_batchnorm
from training.trainer import Trainer

EXTRA = [
    "train.eval_every=1000",
    "train.log_every=10",
    "train.lr=0.01",
    "methods.unlabeled_batch_size=4",
    "methods.rampup_steps=0",
]
HEADS = {
    "softmax": [],
    "ecoc": ["model.head=ecoc"],
    "prototype": ["model.head=prototype", "methods.des4.enabled=true"],
}
U2PL = [
    "methods.u2pl.enabled=true",
    "methods.u2pl.anchors=16",
    "methods.u2pl.negatives=8",
    "methods.u2pl.delta_p=0.0",
]
# recipe -> (head, overrides, the loss terms that must fall)
RECIPES = {
    "mean-teacher": ("softmax", ["methods.confidence_threshold=0.5"], ["unsup"]),
    "alignment": (
        "softmax",
        ["methods.confidence_threshold=0.5", "methods.alignment.enabled=true"],
        ["unsup"],
    ),
    "u2pl": ("softmax", [*U2PL, "methods.u2pl.sce_weight=0.1"], ["unsup"]),
    "ecoc": ("ecoc", [], ["sup", "unsup"]),
    "eln": ("softmax", ["methods.eln.enabled=true", "methods.eln.contrast_weight=1.0"], ["eln"]),
    "des4": ("prototype", [], ["des4_unbiased", "des4_unsup"]),
    "combined": ("ecoc", [*U2PL, "methods.eln.enabled=true"], ["sup", "eln"]),
}


def test_filters_combine_as_documented() -> None:
    valid = torch.tensor([True, True, True, False])
    confident = torch.tensor([True, True, False, True])
    eln = torch.tensor([True, False, True, True])
    reliable, unreliable = combine_filters(valid, [confident, eln])
    assert reliable.tolist() == [True, False, False, False]  # every filter must trust it
    assert unreliable.tolist() == [False, True, True, False]  # any distrust; never invalid


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("methods")
    params = _params(root, [])
    write_dataset(params.data.root, params.data.synth)
    write_split(make_split(params.data), params.data)
    for head, extra in HEADS.items():
        Trainer(
            _params(
                root,
                [
                    *extra,
                    "methods.eln.enabled=true",
                    "train.steps=60",
                    f"train.out_dir={root / f'r0_{head}'}",
                ],
            )
        ).run()
    return root


def _params(root: Path, extra: list[str]) -> Params:
    return load_params(None, [*tiny_overrides(root), *EXTRA, *extra])


def _windows(history: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in history.open() if '"loss"' in line]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RECIPES))
def test_method_runs_and_its_losses_fall(workspace: Path, name: str) -> None:
    head, extra, falling = RECIPES[name]
    out = workspace / name
    params = _params(
        workspace,
        [
            *HEADS[head],
            *extra,
            "methods.unlabeled=true",
            f"methods.init_from={workspace / f'r0_{head}' / 'last.pt'}",
            "train.steps=80",
            f"train.out_dir={out}",
        ],
    )
    Trainer(params).run()
    rows = _windows(out / "history.jsonl")
    assert len(rows) == 8
    # Each window is a 10-step mean; the first and last 20 steps are compared, because
    # between two single windows the ECOC head's supervised loss (about 8.3, falling about
    # 0.1 per 40 steps here) moves up and down by as much as it falls.
    for key in falling:
        first = sum(r[key] for r in rows[:2]) / 2
        last = sum(r[key] for r in rows[-2:]) / 2
        assert last < first, f"{key}: {first} -> {last} (first and last 20 steps)"
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    if name == "eln":  # the pixel contrast (off by default) runs when weighted
        assert all("eln_contrast" in r for r in rows)
    if name == "alignment":  # one running marginal per condition of the pool, checkpointed
        conditions = set(read_conditions(params.data.root).values())
        assert {k for r in rows for k in r if k.startswith("align_tv:")} == {
            f"align_tv:{c}" for c in conditions
        }
        state = torch.load(out / "last.pt", weights_only=False)["objective"]
        assert state["component:alignment"]["groups"] == sorted(conditions)
        drift = json.loads((out / "metrics.json").read_text())["alignment_drift"]
        assert set(drift) == {f"align_tv:{c}" for c in conditions}
        assert all(0 <= v <= 1 for v in drift.values())
    assert (out / "best.pt").exists() and (out / "metrics.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["combined", "alignment"])
def test_semi_supervised_resume_matches_uninterrupted_run(workspace: Path, name: str) -> None:
    head, extra, _ = RECIPES[name]
    common = [
        *HEADS[head],
        *extra,
        "methods.unlabeled=true",
        "train.steps=6",
        "train.checkpoint_every=3",
        "train.log_every=1",
        f"methods.init_from={workspace / f'r0_{head}' / 'last.pt'}",
    ]
    straight, resumed_dir = workspace / f"straight_{name}", workspace / f"resumed_{name}"
    Trainer(_params(workspace, [*common, f"train.out_dir={straight}"])).run()
    resumed = _params(workspace, [*common, f"train.out_dir={resumed_dir}"])
    Trainer(resumed).run(stop_at=3)
    Trainer(resumed).run()
    a = torch.load(straight / "last.pt", weights_only=False)
    b = torch.load(resumed_dir / "last.pt", weights_only=False)
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], atol=0, rtol=0, msg=key)
    for key in a["objective"]["teacher"]:
        torch.testing.assert_close(
            a["objective"]["teacher"][key], b["objective"]["teacher"][key], atol=0, rtol=0, msg=key
        )
    if name == "combined":
        qa, qb = a["objective"]["component:u2pl"], b["objective"]["component:u2pl"]
        torch.testing.assert_close(qa["memory"], qb["memory"], atol=0, rtol=0)
    else:  # the running marginals continue where they stopped
        da, db = a["objective"]["component:alignment"], b["objective"]["component:alignment"]
        torch.testing.assert_close(da["sums"], db["sums"], atol=0, rtol=0)
        torch.testing.assert_close(da["weights"], db["weights"], atol=0, rtol=0)


def test_eln_constraint_uses_class_scores_for_every_head(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an ECOC head the main CE of Eq. 3 must come from the decoded class scores, not
    from the K raw bit logits."""
    import torch.nn.functional as F

    import training.components as components
    from training.components import ELNComponent
    from training.models import build_model
    from training.semi_supervised import upsample

    params = load_params(
        None,
        [
            "model.head=ecoc",
            "model.ecoc.bits=12",
            "model.ecoc.min_distance=3",
            "methods.eln.enabled=true",
        ],
    )
    model = build_model(params.model, 5)
    eln = ELNComponent(model, params, 5, torch.device("cpu"))
    seen: list[torch.Tensor] = []
    original = components.aux_indicators

    def spy(aux_ce: list[torch.Tensor], main_ce: torch.Tensor, alphas: list[float]):
        seen.append(main_ce)
        return original(aux_ce, main_ce, alphas)

    monkeypatch.setattr(components, "aux_indicators", spy)
    images = torch.randn(2, 3, 32, 32)
    labels = torch.randint(0, 5, (2, 32, 32))
    out = model.forward_parts(images)
    scores = model.head.class_scores(upsample(out.raw, (32, 32)))
    eln.labeled_losses(images, labels, out, scores)
    expected = F.cross_entropy(scores, labels, reduction="none").mean(dim=(1, 2))
    torch.testing.assert_close(seen[0], expected.detach())


def test_warm_start_from_another_architecture_is_a_clear_error(workspace: Path) -> None:
    from segloop.errors import SegloopError

    params = _params(
        workspace,
        [
            *HEADS["ecoc"],
            "methods.unlabeled=true",
            "train.steps=2",
            f"methods.init_from={workspace / 'r0_softmax' / 'last.pt'}",
            f"train.out_dir={workspace / 'mismatch'}",
        ],
    )
    with pytest.raises(SegloopError, match="another shape"):
        Trainer(params)


@pytest.mark.slow
def test_eln_fit_only_trains_the_eln_and_leaves_the_model_untouched(workspace: Path) -> None:
    warm = workspace / "r0_softmax" / "last.pt"
    out = workspace / "eln_fit"
    params = _params(
        workspace,
        [
            "methods.eln.enabled=true",
            "methods.eln.fit_only=true",
            f"methods.init_from={warm}",
            "train.steps=40",
            f"train.out_dir={out}",
        ],
    )
    Trainer(params).run()
    rows = _windows(out / "history.jsonl")
    # no model loss; Eq. 3's state per interval: the main CE, each aux decoder's activity
    activity = {"eln_main_ce", "eln_aux_active_0", "eln_aux_active_1"}
    assert set(rows[0]) == {"step", "loss", "eln", "eln_aux", "lr", *activity}
    assert rows[-1]["eln"] < rows[0]["eln"]
    summary = json.loads((out / "metrics.json").read_text())["eln_aux_decoders"]
    assert summary["steps"] == 40 and len(summary["aux_active"]) == 2
    assert all(0.0 <= a <= 1.0 for a in summary["aux_active"]) and summary["main_ce"] > 0
    before = torch.load(warm, weights_only=False)["model"]
    best = torch.load(out / "best.pt", weights_only=False)
    for key, value in before.items():  # weights and BatchNorm statistics alike
        torch.testing.assert_close(best["model"][key], value, atol=0, rtol=0, msg=key)
    fitted = torch.load(out / "last.pt", weights_only=False)["objective"]["module:eln"]
    for key, value in best["eln"].items():  # best.pt holds the newest ELN, not the first
        torch.testing.assert_close(value, fitted[key], atol=0, rtol=0, msg=key)


@pytest.mark.slow
def test_an_auxiliary_decoder_that_cannot_train_is_warned(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = workspace / "eln_idle"
    params = _params(
        workspace,
        [
            "methods.eln.enabled=true",
            "methods.eln.fit_only=true",
            "methods.eln.aux_alphas=[1.0,1000000.0]",  # the second bound is out of reach
            f"methods.init_from={workspace / 'r0_softmax' / 'last.pt'}",
            "train.steps=4",
            "train.log_every=2",
            f"train.out_dir={out}",
        ],
    )
    Trainer(params).run()
    summary = json.loads((out / "metrics.json").read_text())["eln_aux_decoders"]
    assert summary["aux_active"][0] > 0 and summary["aux_active"][1] == 0.0
    printed = " ".join(capsys.readouterr().err.split())
    assert "decoder(s) 1 (alpha 1e+06: bound" in printed and "cannot train" in printed


@pytest.mark.slow
def test_measuring_pseudo_labels_reads_truth_without_changing_training(workspace: Path) -> None:
    common = [
        "methods.unlabeled=true",
        f"methods.init_from={workspace / 'r0_softmax' / 'last.pt'}",
        "train.steps=4",
        "train.log_every=2",
    ]
    runs = {
        "blind": [],
        "measured": ["train.measure_pseudo_labels=true"],
        "filtered": ["train.measure_pseudo_labels=true", "methods.confidence_threshold=0.9"],
    }
    for name, extra in runs.items():
        Trainer(_params(workspace, [*common, *extra, f"train.out_dir={workspace / name}"])).run()
    blind = torch.load(workspace / "blind" / "last.pt", weights_only=False)
    measured = torch.load(workspace / "measured" / "last.pt", weights_only=False)
    for key in blind["model"]:
        torch.testing.assert_close(blind["model"][key], measured["model"][key], atol=0, rtol=0)
    metrics = {n: json.loads((workspace / n / "metrics.json").read_text()) for n in runs}
    assert "pseudo_label_quality" not in metrics["blind"]
    # no filter: every pixel with a true class is kept, and precision is the teacher's accuracy
    everything = metrics["measured"]["pseudo_label_quality"]
    assert everything["coverage"] == 1.0 and everything["steps"] == 4
    assert 0.0 < everything["precision"] < 1.0
    # a confidence threshold keeps fewer pixels
    assert metrics["filtered"]["pseudo_label_quality"]["coverage"] < 1.0
    rows = _windows(workspace / "measured" / "history.jsonl")
    assert [r["pseudo_coverage"] for r in rows] == [1.0, 1.0]


@pytest.mark.slow
@pytest.mark.parametrize("precise_scores_better", [True, False])
def test_precise_bn_recomputes_best_once_and_keeps_the_better_model(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, precise_scores_better: bool
) -> None:
    """methods.precise_bn on a semi-supervised run: best.pt gets the labeled frames'
    BatchNorm statistics where they validate at least as well, and keeps the teacher's
    running ones otherwise; a rerun of the finished run leaves best.pt alone."""
    scores = {"val_miou": 0.5, "precise_bn_val_miou": 0.6 if precise_scores_better else 0.4}
    monkeypatch.setattr(Trainer, "_evaluate", lambda self, model, key: scores[key])
    out = workspace / f"precise_{precise_scores_better}"
    params = _params(
        workspace,
        [
            "methods.unlabeled=true",
            f"methods.init_from={workspace / 'r0_softmax' / 'last.pt'}",
            "train.steps=4",
            f"train.out_dir={out}",
        ],
    )
    assert Trainer(params).run().best_miou == max(scores.values())
    best = torch.load(out / "best.pt", weights_only=False)
    teacher = torch.load(out / "last.pt", weights_only=False)["objective"]["teacher"]
    labeled = split_samples(params.data, "labeled", with_masks=False)
    assert best["precise_bn"] == {
        "frames": len(labeled),
        "val_miou_running_statistics": 0.5,
        "val_miou_precise": scores["precise_bn_val_miou"],
        "kept": precise_scores_better,
    }
    assert json.loads((out / "metrics.json").read_text())["precise_bn"] == best["precise_bn"]
    running = [k for k in teacher if k.endswith(("running_mean", "running_var"))]
    assert running
    if precise_scores_better:
        model, _ = model_from_checkpoint(best)
        expected = {k: v.clone() for k, v in model.state_dict().items()}
        frames = [read_image(sample.image) for sample in labeled]
        cpu = torch.device("cpu")
        batches = frame_batches(frames, params.train.crop, params.train.batch_size, cpu)
        recompute_batchnorm(model, batches, seed=params.train.seed)
        for key, value in model.state_dict().items():  # best.pt holds exactly those statistics
            torch.testing.assert_close(expected[key], value, atol=1e-6, rtol=1e-5, msg=key)
        assert any(not torch.allclose(best["model"][k], teacher[k]) for k in running)
        for key in teacher:  # and the teacher's weights
            if key not in running and not key.endswith("num_batches_tracked"):
                torch.testing.assert_close(best["model"][key], teacher[key], atol=0, rtol=0)
    else:
        for key in teacher:
            torch.testing.assert_close(best["model"][key], teacher[key], atol=0, rtol=0)
    before = (out / "best.pt").read_bytes()
    Trainer(params).run()
    assert (out / "best.pt").read_bytes() == before
    supervised = torch.load(workspace / "r0_softmax" / "best.pt", weights_only=False)
    assert "precise_bn" not in supervised  # only after semi-supervised training

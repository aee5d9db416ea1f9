"""Distribution alignment (ReMixMatch §3.2) per group: hand-computed cases."""

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from segloop.datasets import Sample
from segloop.errors import DataError, ParamsError
from segloop.imageio import write_png
from segloop.params import load_params
from segloop.splits import read_conditions
from training.data import UnlabeledFrames
from training.methods.alignment import DistributionAlignment, align, frame_groups
from training.trainer import alignment_groups


def _probs(*frames: list[float]) -> torch.Tensor:
    """B x C x 1 x 2 probabilities: each frame's two pixels share one distribution."""
    return torch.tensor(frames)[:, :, None, None].expand(-1, -1, 1, 2).clone()


def test_align_rescales_by_prior_over_marginal_and_renormalizes() -> None:
    # q = (0.5, 0.5), p(y) = (0.5, 0.5), p~ = (0.8, 0.2): q * ratio = (0.3125, 1.25) -> (0.2, 0.8)
    out = align(_probs([0.5, 0.5]), torch.tensor([0.5, 0.5]), torch.tensor([[0.8, 0.2]]))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.2, 0.8]))
    # a marginal equal to the prior changes nothing
    q = _probs([0.7, 0.3])
    torch.testing.assert_close(align(q, torch.tensor([0.6, 0.4]), torch.tensor([[0.6, 0.4]])), q)


def test_a_class_absent_from_the_labeled_set_is_never_the_pseudo_label() -> None:
    out = align(_probs([0.9, 0.1]), torch.tensor([0.0, 1.0]), torch.tensor([[0.5, 0.5]]))
    assert out[0].argmax(dim=0).eq(1).all()
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, 1.0]))


def test_running_marginal_is_bias_corrected_and_kept_per_group() -> None:
    da = DistributionAlignment(torch.tensor([0.5, 0.5]), ["day", "fog"], 0.5, torch.device("cpu"))
    da.update(_probs([0.8, 0.2]), torch.tensor([1]))
    # the first frame of a group is its whole estimate (not 0.5 * it)
    torch.testing.assert_close(da.marginals()[1], torch.tensor([0.8, 0.2]))
    assert da.weights[0] == 0  # day untouched
    da.update(_probs([0.4, 0.6], [0.2, 0.8], [0.9, 0.1]), torch.tensor([1, 1, 0]))
    # fog: sums = 0.5^2 * (0.8, 0.2) + (0.4, 0.6) + (0.2, 0.8) = (0.8, 1.45); weight 2.25
    torch.testing.assert_close(da.marginals()[1], torch.tensor([0.8, 1.45]) / 2.25)
    torch.testing.assert_close(da.marginals()[0], torch.tensor([0.9, 0.1]))


def test_call_updates_then_aligns_each_frame_by_its_own_group() -> None:
    da = DistributionAlignment(torch.tensor([0.5, 0.5]), ["day", "fog"], 0.0, torch.device("cpu"))
    q = _probs([0.5, 0.5], [0.8, 0.2])
    out = da(q, torch.tensor([0, 1]))
    # day's marginal is (0.5, 0.5) = prior: unchanged; fog's is (0.8, 0.2): as in the case above
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(out[1, :, 0, 0], torch.tensor([0.5, 0.5]))
    assert da.drift() == pytest.approx({"align_tv:day": 0.0, "align_tv:fog": 0.3})


def test_drift_lists_only_groups_seen() -> None:
    da = DistributionAlignment(torch.tensor([0.5, 0.5]), ["day", "fog"], 0.9, torch.device("cpu"))
    da.update(_probs([1.0, 0.0]), torch.tensor([0]))
    assert da.drift() == pytest.approx({"align_tv:day": 0.5})


def test_state_round_trip_and_group_mismatch() -> None:
    da = DistributionAlignment(torch.tensor([0.5, 0.5]), ["day", "fog"], 0.9, torch.device("cpu"))
    da.update(_probs([0.7, 0.3]), torch.tensor([1]))
    other = DistributionAlignment(
        torch.tensor([0.5, 0.5]), ["day", "fog"], 0.9, torch.device("cpu")
    )
    other.load_state(da.state())
    torch.testing.assert_close(other.marginals(), da.marginals())
    pool = DistributionAlignment(torch.tensor([0.5, 0.5]), ["pool"], 0.9, torch.device("cpu"))
    with pytest.raises(ValueError, match="aligns groups"):
        pool.load_state(da.state())


def test_frame_groups() -> None:
    keys = ["a.png", "b.png", "c.png", "d.png"]
    names, index = frame_groups(keys, {"a.png": "fog", "b.png": "day", "d.png": "fog"})
    assert names == ["day", "fog", "unknown"]
    assert index == [1, 0, 2, 1]
    assert frame_groups(keys, None) == (["pool"], [0, 0, 0, 0])


def test_params_refuse_alignment_without_probabilities_or_unlabeled() -> None:
    with pytest.raises(ParamsError, match=r"methods\.alignment needs methods\.unlabeled"):
        load_params(None, ["methods.alignment.enabled=true"])
    with pytest.raises(ParamsError, match="ECOC head's pseudo-labels are bit-wise"):
        load_params(
            None, ["methods.alignment.enabled=true", "methods.unlabeled=true", "model.head=ecoc"]
        )


def test_condition_groups_need_conditions_csv(tmp_path: Path) -> None:
    on = [
        "methods.alignment.enabled=true",
        "methods.unlabeled=true",
        f"data.root={tmp_path}",
        "methods.alignment.groups=condition",
    ]
    auto = load_params(None, [*on, "methods.alignment.groups=auto"])
    none = read_conditions(tmp_path)  # as the trainer reads them: no conditions.csv
    assert alignment_groups(auto, ["a.png"], none) == (["pool"], [0])  # one group
    with pytest.raises(DataError, match=r"needs the dataset.s conditions\.csv"):
        alignment_groups(load_params(None, on), ["a.png"], none)
    pool = load_params(None, [*on, "methods.alignment.groups=pool"])
    assert alignment_groups(pool, ["a.png"], none) == (["pool"], [0])
    (tmp_path / "conditions.csv").write_text("image,condition\na.png,fog\nb.png,day\n")
    listed = read_conditions(tmp_path)
    keys = ["a.png", "b.png"]
    assert alignment_groups(load_params(None, on), keys, listed) == (["day", "fog"], [1, 0])
    assert alignment_groups(auto, keys, listed) == (["day", "fog"], [1, 0])


def test_a_skipped_pool_frame_takes_its_group_with_it(tmp_path: Path) -> None:
    samples = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.png"
        if name == "b":
            path.write_bytes(b"not an image at all")
        else:
            write_png(path, np.zeros((4, 4, 3), dtype=np.uint8))
        samples.append(Sample(name, path, None))
    frames = UnlabeledFrames(samples, A.Compose([]), on_bad_file="skip", groups=[0, 1, 2])
    assert list(frames.skipped) == ["b"]
    assert [frames[(i, 0)][2] for i in range(len(frames))] == [0, 2]

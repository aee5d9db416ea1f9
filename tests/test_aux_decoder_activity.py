import json
from pathlib import Path
from typing import Any

import pytest

from training.aux_decoder_activity import activity_over_history, idle_decoders_warning


def _write(path: Path, records: list[dict[str, float]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_activity_is_step_weighted_over_intervals(tmp_path: Path) -> None:
    history = _write(
        tmp_path / "history.jsonl",
        [
            {"step": 10, "loss": 1.0, "eln_main_ce": 0.2, "eln_aux_active_0": 1.0,
             "eln_aux_active_1": 0.0, "eln_aux_active_10": 0.5},
            {"step": 10, "val_miou": 0.3},  # a validation record: skipped
            {"step": 40, "loss": 1.0, "eln_main_ce": 0.4, "eln_aux_active_0": 0.5,
             "eln_aux_active_1": 0.0, "eln_aux_active_10": 1.0},
            {"step": 50, "loss": 1.0},  # the ELN frozen: no Eq. 3 state
        ],
    )  # fmt: skip
    activity = activity_over_history(history)
    assert activity is not None and activity["steps"] == 40
    # intervals of 10 and 30 steps: (10 * 0.2 + 30 * 0.4) / 40 = 0.35
    assert activity["main_ce"] == pytest.approx(0.35)
    # decoders in numeric order (10 after 1): (10 * 1 + 30 * 0.5) / 40 = 0.625, 0, 0.875
    assert activity["aux_active"] == pytest.approx([0.625, 0.0, 0.875])


def test_no_activity_without_the_records(tmp_path: Path) -> None:
    assert activity_over_history(tmp_path / "missing.jsonl") is None
    history = _write(tmp_path / "history.jsonl", [{"step": 10, "loss": 1.0, "sup": 1.0}])
    assert activity_over_history(history) is None


def test_warning_names_the_decoders_whose_bound_is_out_of_reach() -> None:
    # softmax warm model on the benchmark: main CE 0.096; log 19 = 2.944
    activity = {"main_ce": 0.096, "aux_active": [0.53, 0.015, 0.0], "steps": 60}
    warning = _idle(activity, [20.0, 50.0, 31.0])
    assert warning is not None
    # 20 x 0.096 = 1.92 < 2.944 trains; 50 x 0.096 = 4.80 and 31 x 0.096 = 2.976 do not
    assert "decoder(s) 1 (alpha 50: bound 4.80, trained on 1.5% of images), " in warning
    assert "2 (alpha 31: bound 2.98, trained on 0.0% of images) cannot train" in warning
    assert "below 30.7" in warning  # 2.944 / 0.096 = 30.67
    assert _idle(activity, [20.0, 30.0]) is None


def _idle(activity: dict[str, Any], alphas: list[float]) -> str | None:
    return idle_decoders_warning(activity, alphas, 19)

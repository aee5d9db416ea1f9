import json
import math
from pathlib import Path

import pytest

from training.aux_decoder_activity import activity_over_history, untrained_decoders_warning


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


def test_warning_names_only_the_decoders_that_never_trained() -> None:
    activity = {"main_ce": 0.35, "aux_active": [0.0, 0.2, 0.0], "steps": 100}
    warning = untrained_decoders_warning(activity, [20.0, 5.0, 50.0], 19)
    assert warning is not None
    assert "0 (alpha 20), 2 (alpha 50) never trained" in warning
    assert f"below {math.log(19) / 0.35:.1f}" in warning  # log 19 / 0.35 = 8.4
    assert "below 8.4" in warning
    activity["aux_active"] = [0.1, 0.2, 0.3]
    assert untrained_decoders_warning(activity, [20.0, 5.0, 50.0], 19) is None

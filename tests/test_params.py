from pathlib import Path

import pytest

from segloop.errors import ParamsError
from segloop.params import Params, load_params


def test_repo_params_file_is_valid_and_matches_model_defaults() -> None:
    params = load_params(Path("params.yaml"))
    defaults = Params()
    assert params == defaults  # the file lists every knob at its model default
    assert params.data == defaults.data
    assert params.model == defaults.model
    assert params.eval == defaults.eval
    assert params.methods == defaults.methods
    assert params.selection == defaults.selection


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("train:\n  stpes: 10\n")
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert str(path) in str(info.value)
    assert "train.stpes: unknown key" in str(info.value)


def test_mistyped_value_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("train:\n  steps: many\n")
    with pytest.raises(ParamsError, match=r"train\.steps"):
        load_params(path)


def test_fraction_accepts_ratio_strings() -> None:
    assert load_params(None, ["data.split.fraction=1/8"]).data.split.fraction == 0.125
    assert load_params(None, ["data.split.fraction=0.5"]).data.split.fraction == 0.5
    with pytest.raises(ParamsError, match="fraction"):
        load_params(None, ["data.split.fraction=2/1"])


def test_overrides_parse_yaml_values() -> None:
    params = load_params(None, ["train.crop=[64, 96]", "model.pretrained=null"])
    assert params.train.crop == (64, 96)
    assert params.model.pretrained is None
    with pytest.raises(ParamsError, match=r"section\.key=value"):
        load_params(None, ["train.steps"])


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1,\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_custom_taxonomy_sets_class_count() -> None:
    params = load_params(
        None, ["data.taxonomy={name: toy, classes: [a, b, c], palette: [[0,0,0],[1,1,1],[2,2,2]]}"]
    )
    assert params.data.taxonomy.build().num_classes == 3
    with pytest.raises(ParamsError, match="both"):
        load_params(None, ["data.taxonomy={name: toy, classes: [a]}"])


def test_unknown_condition_rejected() -> None:
    with pytest.raises(ParamsError, match="unknown conditions"):
        load_params(None, ["data.split.labeled_conditions=[snow]"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["methods.eln.fit_only=true", "methods.init_from=r0.pt"], "methods.eln.enabled"),
        (["methods.eln.fit_only=true", "methods.eln.enabled=true"], "methods.init_from"),
        (
            [
                "methods.eln.fit_only=true",
                "methods.eln.enabled=true",
                "methods.init_from=r0.pt",
                "methods.unlabeled=true",
            ],
            "switch off",
        ),
    ],
)
def test_eln_fit_only_needs_a_model_and_ground_truth(overrides: list[str], message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        load_params(None, overrides)

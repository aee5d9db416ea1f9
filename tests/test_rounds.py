"""Rounds in params.yaml: per-round params and paths, validation, appending a round, the
training fingerprint, and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from segloop.errors import ParamsError
from segloop.fingerprint import run_fingerprint
from segloop.params import load_params
from segloop.rounds import append_round, flatten_set, next_round_name, round_params

ROOT = Path(__file__).resolve().parents[1]


def _params_file(tmp_path: Path, rounds: dict[str, object]) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"rounds": rounds}, sort_keys=False))
    return path


def test_round_params_apply_the_round_then_its_paths(tmp_path: Path) -> None:
    path = _params_file(
        tmp_path,
        {
            "r0": {"previous": None, "after": "data/splits", "set": {"train.steps": 7}},
            "r1": {
                "previous": "r0",
                "after": "rounds/r0",
                "init": "scratch",
                "set": {"methods": {"unlabeled": True}, "selection": {"alpha": 0.5}},
            },
        },
    )
    r0 = round_params(path, "r0")
    assert r0.train.steps == 7 and r0.train.out_dir == Path("rounds/r0/train")
    assert r0.methods.init_from is None and r0.methods.pseudo_labels is None
    assert r0.export.out == Path("rounds/r0/export")
    assert r0.label.export_dir == Path("rounds/r0/export")
    assert r0.eval.checkpoint == Path("rounds/r0/train/best.pt")
    r1 = round_params(path, "r1", ["train.steps=9"])
    assert r1.train.steps == 9 and r1.methods.unlabeled and r1.selection.alpha == 0.5
    assert r1.methods.pseudo_labels == Path("rounds/r0/select/pseudo")
    assert r1.methods.init_from is None  # init: scratch
    assert r1.selection.out == Path("rounds/r1/select/pseudo")
    with pytest.raises(ParamsError, match="no round 'r5'"):
        round_params(path, "r5")


def test_a_bad_round_override_names_the_round(tmp_path: Path) -> None:
    path = _params_file(
        tmp_path, {"r0": {"previous": None, "after": "data/splits", "set": {"train.stepz": 1}}}
    )
    with pytest.raises(ParamsError, match=r"(?s)round r0 .*train.stepz: unknown key"):
        round_params(path, "r0")


@pytest.mark.parametrize(
    ("rounds", "message"),
    [
        ({"r0": {"previous": "rx", "after": "rounds/rx"}}, "must name the round before it"),
        (
            {
                "r0": {"previous": None, "after": "data/splits"},
                "r1": {"previous": None, "after": "data/splits"},
            },
            "only the first round has no previous",
        ),
        (
            {
                "r0": {"previous": None, "after": "data/splits"},
                "r1": {"previous": "r0", "after": "rounds/r9"},
            },
            "rounds.r1.after must be rounds/r0",
        ),
    ],
)
def test_rounds_must_chain(tmp_path: Path, rounds: dict[str, object], message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        load_params(_params_file(tmp_path, rounds))


def test_flatten_set_accepts_nested_and_dotted_keys() -> None:
    nested = {"methods": {"eln": {"enabled": True}, "unlabeled": True}, "train.steps": 5}
    assert flatten_set(nested) == {
        "methods.eln.enabled": True,
        "methods.unlabeled": True,
        "train.steps": 5,
    }


def test_rounds_add_appends_a_valid_round(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    name = append_round(path, load_params(path))
    assert name == "r3"
    params = load_params(path)
    assert list(params.rounds) == ["r0", "r1", "r2", "r3"]
    assert params.rounds["r3"].previous == "r2" and params.rounds["r3"].after == "rounds/r2"
    assert params.rounds["r3"].set == params.rounds["r2"].set
    assert (ROOT / "params.yaml").read_text() in path.read_text()  # comments kept
    assert next_round_name(["r0", "warmup", "r12"]) == "r13"


def test_rounds_add_follows_the_files_indentation(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(
        "rounds:\n    # the first round\n    r0:\n        previous: null\n"
        "        after: data/splits\n        set:\n            train.steps: 7\n"
    )
    assert append_round(path, load_params(path)) == "r1"
    assert path.read_text().endswith(
        "\n    r1:\n        previous: r0\n        after: rounds/r0\n        init: previous\n"
        "        set:\n          train.steps: 7\n"
    )
    assert load_params(path).rounds["r1"].set == {"train.steps": 7}


def test_rounds_add_puts_the_file_back_when_it_no_longer_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segloop.rounds as rounds

    path = tmp_path / "params.yaml"
    path.write_text((ROOT / "params.yaml").read_text())
    before = path.read_text()
    params = load_params(path)

    def invalid(_: Path) -> None:
        raise ParamsError("params.yaml: broken")

    monkeypatch.setattr(rounds, "load_params", invalid)
    with pytest.raises(ParamsError, match="broken"):
        append_round(path, params)
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_the_fingerprint_follows_training_params_and_inputs(tmp_path: Path) -> None:
    base = [f"data.split.dir={tmp_path}", f"methods.pseudo_labels={tmp_path / 'pseudo'}"]
    (tmp_path / "labeled.txt").write_text("a\n")
    (tmp_path / "pseudo").mkdir()
    (tmp_path / "pseudo" / "a.png").write_bytes(b"1")
    first = run_fingerprint(load_params(None, base))
    same = run_fingerprint(
        load_params(
            None, [*base, "train.threads=1", "train.out_dir=x", "train.keep_host_memory=false"]
        )
    )
    assert first == same  # bookkeeping does not count
    assert run_fingerprint(load_params(None, [*base, "train.steps=9"])) != first
    (tmp_path / "pseudo" / "a.png").write_bytes(b"2")
    assert run_fingerprint(load_params(None, base)) != first
    (tmp_path / "pseudo" / "a.png").write_bytes(b"1")
    (tmp_path / "labeled.txt").write_text("b\n")
    assert run_fingerprint(load_params(None, base)) != first


def test_report_writes_csv_and_charts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from segloop.rounds_cli import app

    monkeypatch.chdir(tmp_path)
    classes = ["road", "sky"]
    rounds = {
        "r0": {"previous": None, "after": "data/splits"},
        "r1": {"previous": "r0", "after": "rounds/r0"},
    }
    params = {
        "data": {
            "taxonomy": {"name": "two", "classes": classes, "palette": [[0, 0, 0], [1, 1, 1]]}
        },
        "loop": {"tracking": {"enabled": False}},
        "rounds": rounds,
    }
    Path("params.yaml").write_text(yaml.safe_dump(params))
    for name, miou in (("r0", 0.25), ("r1", 0.5)):
        folder = tmp_path / "rounds" / name
        (folder / "eval").mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"miou": miou}))
        report = {
            "by_condition": {"fog": {"miou": miou / 2}},
            "per_class_iou": {"road": miou, "sky": None},
        }
        (folder / "eval" / "eval.json").write_text(json.dumps(report))
    result = CliRunner().invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "reports" / "miou_by_round.csv").read_text().splitlines()
    assert rows == ["round,index,miou", "r0,0,0.25", "r1,1,0.5"]
    per_class = (tmp_path / "reports" / "per_class_iou.csv").read_text().splitlines()
    assert per_class[1:] == ["r0,road,0.25", "r0,sky,", "r1,road,0.5", "r1,sky,"]
    assert (tmp_path / "reports" / "miou_by_round.png").stat().st_size > 1000

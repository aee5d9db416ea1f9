"""The CLI's user-facing behaviour and the import boundaries between packages."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TinyExport

ROOT = Path(__file__).resolve().parents[1]
BLOCK_TORCH = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'training'):\n"
    "            raise ImportError(f'blocked import of {name}')\n"
    "sys.meta_path.insert(0, Block())\n"
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


INFERENCE_SERVER_MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT / "inference_server").rglob("*.py")
)


@pytest.mark.parametrize(
    "module",
    [
        *INFERENCE_SERVER_MODULES,
        "segloop",
        "segloop.select_cli",
        "segloop.label_manifest",
        "segloop.cli",
        "segloop.synth",
        "segloop.splits",
        "segloop.metrics",
        "segloop.datasets",
        "segloop.data_cli",
    ],
)
def test_torch_free_modules_import_without_torch(module: str) -> None:
    result = _run(BLOCK_TORCH + f"import {module}\nprint('ok')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_blocker_really_blocks() -> None:
    result = _run(BLOCK_TORCH + "import training.trainer")
    assert result.returncode != 0 and "blocked import" in result.stderr


def _imports(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_layering() -> None:
    assert not _imports("segloop") & {"training", "export", "inference_server", "torch"}
    assert not _imports("inference_server") & {"training", "export", "torch"}
    assert not _imports("training") & {"inference_server", "export"}


def test_help_lists_commands_without_loading_torch() -> None:
    result = _run(
        BLOCK_TORCH + "import sys; sys.argv = ['segloop', '--help']\n"
        "from segloop.cli import main\nmain()"
    )
    assert result.returncode == 0, result.stderr
    for command in ("data", "train", "eval"):
        assert command in result.stdout


def _segloop(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segloop.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_user_mistakes_are_one_line_errors_not_tracebacks(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("train:\n  stpes: 3\n")
    result = _segloop("train", cwd=tmp_path)
    assert result.returncode == 2
    assert "train.stpes: unknown key" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "params.yaml").write_text("")
    result = _segloop("data", "split", "--set", f"data.root={tmp_path / 'none'}", cwd=tmp_path)
    assert result.returncode == 2 and "dataset root not found" in result.stderr
    assert "Traceback" not in result.stderr
    result = _segloop("eval", "--checkpoint", str(tmp_path / "x.pt"), cwd=tmp_path)
    assert result.returncode == 2 and "checkpoint not found" in result.stderr


@pytest.mark.slow
def test_cli_synth_split_train_eval(tmp_path: Path) -> None:
    sets = [
        f"data.root={tmp_path / 'data'}",
        f"data.split.dir={tmp_path / 'splits'}",
        "data.synth.height=32",
        "data.synth.width=64",
        "data.synth.train_frames=24",
        "data.synth.val_frames=4",
        "data.synth.workers=1",
        "train.crop=[32,64]",
        f"train.out_dir={tmp_path / 'run'}",
        "train.steps=4",
        "train.threads=1",
        "model.aspp_rates=[1,1,1]",
    ]
    args = [x for s in sets for x in ("--set", s)]
    for command in (["data", "synth"], ["data", "split", "--fraction", "1/4"], ["train"], ["eval"]):
        result = _segloop(*command, *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert "6 labeled, 18 unlabeled, 4 val" in " ".join(
        _segloop("data", "split", "--fraction", "1/4", *args, cwd=tmp_path).stdout.split()
    )
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["frames"] == 4 and len(report["per_class_iou"]) == 19
    assert 0.0 <= report["miou"] <= 1.0


def test_ctrl_c_exits_130_with_a_resume_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import segloop.cli

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(segloop.cli, "app", interrupted)
    with pytest.raises(SystemExit) as info:
        segloop.cli.main()
    assert info.value.code == 130
    assert "rerun the same command to resume" in capsys.readouterr().err


def test_label_runs_with_torch_blocked(tiny_export: TinyExport, tmp_path: Path) -> None:
    """The whole labeling run (plan, decode workers, ORT, writers) without torch importable.
    Spawned decoder processes re-import only inference_server modules."""
    out = tmp_path / "out"
    argv = [
        "segloop", "label", str(tiny_export.root / "data" / "leftImg8bit" / "val"),
        "--export-dir", str(tiny_export.export_dir), "--out", str(out),
    ]  # fmt: skip
    result = _run(
        BLOCK_TORCH + f"import sys; sys.argv = {argv!r}\n"
        "from segloop.cli import main\n"
        "if __name__ == '__main__':\n    main()\n"
    )
    assert result.returncode == 0, result.stderr
    assert "labeled 8 frames" in " ".join(result.stdout.split())
    assert "torch" not in result.stderr

"""Atomic whole-file writes: new content replaces old whole, a crash before the rename leaves
the old file untouched, and no temporary file is left behind on success."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from segloop import atomic_files
from segloop.atomic_files import (
    temporary_sibling,
    write_bytes_atomic,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)


def test_json_is_indented_with_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "report.json"
    write_json_atomic(path, {"b": 1, "a": [2]})
    assert path.read_text() == '{\n  "b": 1,\n  "a": [\n    2\n  ]\n}\n'


def test_csv_is_quoted_with_crlf_rows_like_the_csv_module(tmp_path: Path) -> None:
    path = tmp_path / "conditions.csv"
    write_csv_atomic(path, ["image", "condition"], [["a,b.png", "fog"], [3, ""]])
    assert path.read_bytes() == b'image,condition\r\n"a,b.png",fog\r\n3,\r\n'


def test_text_is_utf8(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    write_text_atomic(path, "straße\n")
    assert path.read_bytes() == "straße\n".encode()


def test_overwrite_replaces_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    write_bytes_atomic(path, b"0123456789")
    write_bytes_atomic(path, b"ab")
    assert path.read_bytes() == b"ab"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


def test_crash_before_rename_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "metrics.json"
    write_json_atomic(path, {"miou": 0.5})

    def killed(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic_files.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"miou": 0.9})
    assert json.loads(path.read_text()) == {"miou": 0.5}
    # the new bytes went to the hidden sibling, never into the file readers open
    assert json.loads(temporary_sibling(path).read_text()) == {"miou": 0.9}
    assert temporary_sibling(path).name == ".metrics.json.tmp"

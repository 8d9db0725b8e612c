"""Outputs are decided before any work: no result replaces the -o folder, another X-ray's result
or an earlier run's, unless the user asks (`--overwrite`). Real files, real subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from napari_xvr.errors import XvrInputError
from napari_xvr.io.xray import xray_stem
from napari_xvr.register.workflows.pipeline import plan_outputs


def xvr(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_xvr.cli", *map(str, args)],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=600,
    )


@pytest.mark.parametrize(
    "name,stem",
    [
        (".dcm", "_dcm"),
        ("a.dcm", "a"),
        ("a.b.DCM", "a.b"),
        (".png", "_png"),
        ("noext", "noext"),
        ("..", "__"),
    ],
)
def test_a_stem_is_never_empty(name, stem):
    assert xray_stem(name) == stem


def test_same_stems_from_two_folders_get_distinct_results(tmp_path):
    (tmp_path / "left").mkdir()
    (tmp_path / "right").mkdir()
    paths = [tmp_path / "left" / "x.dcm", tmp_path / "right" / "x.dcm", tmp_path / "left" / "y.dcm"]
    folders = plan_outputs(paths, tmp_path / "out")
    assert [f.name for f in folders] == ["left_x", "right_x", "y"]
    same = plan_outputs([tmp_path / "left" / "x.dcm", tmp_path / "left" / "x.dicom"], tmp_path / "o")
    assert len({f.name for f in same}) == 2


def test_an_existing_result_is_refused_before_any_work(tmp_path):
    (tmp_path / "out" / "x").mkdir(parents=True)
    with pytest.raises(XvrInputError, match=r"already hold\(s\) a result; pass --overwrite"):
        plan_outputs([tmp_path / "x.dcm"], tmp_path / "out")
    assert plan_outputs([tmp_path / "x.dcm"], tmp_path / "out", overwrite=True)
    (tmp_path / "out" / "y").write_text("a user's file")
    with pytest.raises(XvrInputError, match="is a file where a result folder would go"):
        plan_outputs([tmp_path / "y.dcm"], tmp_path / "out", overwrite=True)


@pytest.fixture()
def tricky_folder(tmp_path, synthetic_cases):
    """X-rays named `.dcm` and `a.dcm`, and another `a.dcm` in a second folder."""
    source, _ = synthetic_cases
    first = tmp_path / "in1"
    second = tmp_path / "in2"
    first.mkdir()
    second.mkdir()
    shutil.copy(source / "xray_000.dcm", first / ".dcm")
    shutil.copy(source / "xray_001.dcm", first / "a.dcm")
    shutil.copy(source / "xray_002.dcm", second / "a.dcm")
    return first, second


def test_cli_keeps_the_users_files_and_every_result(tricky_folder, example_volume, tmp_path):
    first, second = tricky_folder
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file")
    args = (
        "register",
        "dicom",
        first,
        second,
        "-v",
        example_volume[0],
        "-o",
        out,
        "--init_only",
        "--verbose",
        "0",
    )
    run = xvr(*args)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert sorted(p.name for p in out.iterdir()) == ["_dcm", "in1_a", "in2_a", "notes.txt"]
    sources = {
        json.loads((out / n / "result.json").read_text())["inputs"]["xray"]
        for n in ("_dcm", "in1_a", "in2_a")
    }
    assert len(sources) == 3
    before = (out / "in1_a" / "result.json").read_text()
    # the same run again is refused in one line before any work, and nothing changes
    again = xvr(*args)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "already hold(s) a result; pass --overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert (out / "in1_a" / "result.json").read_text() == before
    # asked for: replaced
    replaced = xvr(*args, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert (out / "notes.txt").is_file()

"""Path hazards of the CLI, with real subprocesses: odd names, symlinks, relative paths, `~`,
an -o that is a file, and the same X-ray given twice (two results, never one shared or dropped)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def xvr(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "napari_xvr.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def register(xrays, volume, out, cwd=None, env=None):
    return xvr(
        "register",
        "fixed",
        *xrays,
        "-v",
        volume,
        "-o",
        out,
        "--rot",
        "0,0,0",
        "--xyz",
        "0,850,0",
        "--init_only",
        cwd=cwd,
        env=env,
    )


def test_odd_names_symlinks_and_the_same_file_twice(synthetic_cases, example_volume, tmp_path):
    xray = synthetic_cases[0] / "xray_000.dcm"
    link = tmp_path / "link ü.dcm"
    link.symlink_to(xray)
    out = tmp_path / "out dir ü #%"
    proc = register([xray, xray, link], example_volume[0], out)
    assert proc.returncode == 0, proc.stderr
    folders = sorted(p.name for p in out.iterdir())
    assert len(folders) == 3, folders  # nothing shared, nothing dropped
    for folder in folders:
        data = json.loads((out / folder / "result.json").read_text(encoding="utf-8"))
        assert data["inputs"]["xray"] == str(xray.resolve())


def test_relative_output_through_a_symlinked_folder(synthetic_cases, example_volume, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    proc = register([synthetic_cases[0] / "xray_000.dcm"], example_volume[0], "linked/sub", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "real" / "sub" / "xray_000" / "result.json").is_file()
    assert (tmp_path / "linked").is_symlink()


def test_an_output_that_is_a_file_is_refused(synthetic_cases, example_volume, tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("my notes")
    proc = register([synthetic_cases[0] / "xray_000.dcm"], example_volume[0], blocker)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert str(blocker) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "my notes"


def test_a_tilde_output_means_home(synthetic_cases, example_volume, tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    proc = register(
        [synthetic_cases[0] / "xray_000.dcm"], example_volume[0], "~/res", cwd=work, env={"HOME": str(home)}
    )
    assert proc.returncode == 0, proc.stderr
    assert not (work / "~").exists()
    assert (home / "res" / "xray_000" / "result.json").is_file()

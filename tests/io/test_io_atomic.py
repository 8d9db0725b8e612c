"""Atomic writes: whole or nothing, existing folders replaced whole, sane permissions."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys

import pytest

from napari_xvr.errors import XvrInputError
from napari_xvr.io import atomic_dir, atomic_write_bytes, atomic_write_text


def test_atomic_dir_exception_leaves_nothing(tmp_path):
    target = tmp_path / "result"
    with pytest.raises(RuntimeError, match="boom"), atomic_dir(target) as tmp:
        (tmp / "pose.json").write_text("{}")
        assert not target.exists()
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_exception_keeps_existing_folder(tmp_path):
    target = tmp_path / "result"
    target.mkdir()
    (target / "old.json").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
        (tmp / "new.json").write_text("new")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]
    assert sorted(p.name for p in target.iterdir()) == ["old.json"]


def test_atomic_dir_replaces_existing_folder_whole(tmp_path):
    target = tmp_path / "result"
    target.mkdir()
    (target / "stale.png").write_bytes(b"x")
    with atomic_dir(target) as tmp:
        (tmp / "pose.json").write_text("{}")
        assert tmp.parent == tmp_path and tmp != target
    assert sorted(p.name for p in target.iterdir()) == ["pose.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]
    mode = stat.S_IMODE(target.stat().st_mode)
    assert mode == 0o777 & ~_umask()


def test_atomic_dir_refuses_a_file(tmp_path):
    target = tmp_path / "result"
    target.write_text("a file")
    with pytest.raises(XvrInputError, match="is a file; the output must be a folder"), atomic_dir(target):
        pass
    assert target.read_text() == "a file"
    with pytest.raises(XvrInputError, match="is a file, not a folder"), atomic_dir(target / "sub"):
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_bytes_permissions_and_no_temp(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "deep" / "out.bin", b"\x00\x01")
        text = atomic_write_text(tmp_path / "out.txt", "héllo\n")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"\x00\x01" and text.read_text(encoding="utf-8") == "héllo\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(text.stat().st_mode) == 0o644
    atomic_write_text(text, "second")
    assert text.read_text() == "second"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "out.bin", "out.txt"]


def test_atomic_write_failure_leaves_no_temp(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "out.bin", "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(XvrInputError, match="is a file, not a folder; choose another output path"):
        atomic_write_text(blocker / "out.txt", "x")


def _limited_python(code: str, max_file_bytes: int) -> subprocess.CompletedProcess:
    """Run `code` in a Python whose files may not grow past `max_file_bytes` (a real EFBIG)."""

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, resource.RLIM_INFINITY))

    return subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=limit,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
    )


def test_a_write_the_system_refuses_names_the_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    folder = tmp_path / "result"
    code = f"""
from pathlib import Path
from napari_xvr.errors import XvrOutputError
from napari_xvr.io import atomic_dir, atomic_write_bytes
try:
    atomic_write_bytes({str(target)!r}, bytes(1 << 20))
except XvrOutputError as err:
    print(err)
try:
    with atomic_dir({str(folder)!r}) as tmp:
        (tmp / "small.json").write_text("{{}}")
        with open(tmp / "big.bin", "wb") as handle:
            handle.write(bytes(1 << 20))
except XvrOutputError as err:
    print(err)
"""
    run = _limited_python(code, 64 * 1024)
    lines = run.stdout.splitlines()
    assert run.returncode == 0 and len(lines) == 2, run.stderr
    assert lines[0].startswith(f"could not write {target}: File too large. Free some disk space")
    assert lines[1].startswith(f"could not write {folder}: File too large")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temporary file or folder

"""`xvr track` over several sequences: a track folder each with the poses of tracking it alone,
the refusals made before any work, and the sequences shared among two torchrun ranks (CPU,
gloo) with the poses of one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from napari_xvr.cli import main
from napari_xvr.geometry import Intrinsics
from napari_xvr.io.dicom_write import write_xray_dicom
from napari_xvr.register.workflows.sequence import read_frames, split_sequences
from napari_xvr.register.workflows.track_io import read_track, row_matrix
from napari_xvr.synthetic_motion import breathing, make_sequence, sweep

# small and quick: 64 px frames, frame 0 at 1/4 and 1/2 of the detector and never retried from
# more starts, at most 4 LM steps on each later frame
# the sequences are DiffDRR's images of exactly this CT: its density, nothing beyond the CT's ends
FAST = (
    "--scales",
    "4,2",
    "--track_itrs",
    "4",
    "--multistart",
    "0",
    "--no-mirror_check",
    "--device",
    "cpu",
    "--density",
    "diffdrr",
    "--xray_mask",
    "off",
)
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TORCHRUN = str(Path(sys.executable).parent / "torchrun")
NAMES = ("s0_cine", "s1_cine", "s2_cine")  # every file is cine.dcm: the parent folder tells them apart


def xvr(*args, code: int = 0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def sequences(tmp_path_factory, registration_volume):
    """Three 4-frame sequences (64 px, 4.8 mm), each <folder>/cine.dcm: two sweeps, one breath."""
    ct, mask = registration_volume
    root = tmp_path_factory.mktemp("sequences")
    intrinsics = Intrinsics(1020.0, 64, 64, 4.8, 4.8)
    paths = []
    for index, motion in enumerate((sweep(4, 2.0), sweep(4, 2.0, primary=10.0), breathing(4))):
        make_sequence(
            root / f"s{index}", motion, intrinsics, ct, mask, renderer="trilinear", seed=index, name="cine"
        )
        paths.append(root / f"s{index}" / "cine.dcm")
    return paths


def poses(folder) -> np.ndarray:
    return np.stack([row_matrix(row) for row in read_track(folder)["rows"]])


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, sequences, registration_volume):
    """The first two sequences tracked in one command, and each alone: (root, run, alone)."""
    ct = registration_volume[0]
    root = tmp_path_factory.mktemp("many")
    run = xvr("track", "dicom", *sequences[:2], "-v", ct, "-o", root / "both", *FAST)
    alone = []
    for index, path in enumerate(sequences[:2]):
        alone.append(xvr("track", "dicom", path, "-v", ct, "-o", root / f"alone{index}", *FAST))
    return root, run, alone


def test_two_sequences_are_tracked_each_as_it_is_alone(tracked, sequences):
    root, run, alone = tracked
    assert sorted(p.name for p in (root / "both").iterdir()) == list(NAMES[:2])
    for index, name in enumerate(NAMES[:2]):
        data = read_track(root / "both" / name)
        assert data["status"] == "complete" and data["summary"]["frames"] == 4
        assert data["inputs"]["sequence"]["paths"] == [str(sequences[index].resolve())]
        assert np.array_equal(poses(root / "both" / name), poses(root / f"alone{index}"))
    assert f"[1/2] {sequences[0]} -> {root / 'both' / NAMES[0]}\n" in run.output
    assert f"[2/2] {sequences[1]} -> {root / 'both' / NAMES[1]}\n" in run.output
    for name in NAMES[:2]:
        assert run.output.count(f"-> {root / 'both' / name}: 4 frame(s), ") == 1
    total = run.output.strip().splitlines()[-1]
    assert total.startswith("2 sequence(s), 8 frame(s): ")
    # one sequence: its track is -o itself, and the output is as before (no count, no total)
    assert (root / "alone0" / "track.json").is_file()
    assert "[1/1]" not in alone[0].output and "sequence(s)" not in alone[0].output


def test_arguments_make_sequences_and_a_mix_is_refused(sequences, registration_volume, tmp_path):
    movie = read_frames([sequences[0]])
    for index in range(2):
        write_xray_dicom(tmp_path / f"f{index}.dcm", movie.frame(index).image, movie.intrinsics)
    frames = [tmp_path / "f0.dcm", tmp_path / "f1.dcm"]
    assert split_sequences(frames) == [frames]  # single frames given together: one sequence
    assert split_sequences([sequences[0].parent, sequences[1]]) == [[sequences[0].parent], [sequences[1]]]
    assert split_sequences([sequences[0].parent]) == [[sequences[0].parent]]
    for mix, what in (
        ([sequences[0], frames[0]], "a multi-frame X-ray"),
        ([frames[1], sequences[0].parent], "a folder"),
    ):
        run = xvr("track", "dicom", *mix, "-v", registration_volume[0], "-o", tmp_path / "out", *FAST, code=2)
        single = next(p for p in mix if p in frames)
        other = next(p for p in mix if p not in frames)
        assert f"{single} is a single frame, but {other} is {what}" in run.output
        assert "put the single frames in a folder of their own" in run.output
    assert not (tmp_path / "out").exists()


def test_existing_tracks_are_refused_before_any_work(tracked, sequences, registration_volume):
    root = tracked[0]
    before = {name: poses(root / "both" / name) for name in NAMES[:2]}
    # sequence 0's track exists: refused before the volume is read (a DICOM X-ray is no CT)
    run = xvr(
        "track", "dicom", sequences[2], sequences[0], "-v", sequences[0], "-o", root / "both", *FAST, code=2
    )
    assert f"-o {root / 'both' / NAMES[0]}: already holds a tracked sequence; pass --overwrite" in run.output
    assert sorted(p.name for p in (root / "both").iterdir()) == list(NAMES[:2])  # nothing new
    run = xvr("track", "dicom", *sequences[:2], "-v", sequences[0], "-o", root / "alone0", *FAST, code=2)
    assert "holds a tracked sequence itself, and 2 sequences go to a folder each" in run.output
    run = xvr(
        "track",
        "restart",
        *sequences[:2],
        "-v",
        registration_volume[0],
        "-r",
        root / "alone0",
        "--start_frame",
        "2",
        "-o",
        root / "resumed",
        *FAST,
        code=2,
    )
    assert "resuming a track (-r TRACKDIR) continues one sequence" in run.output
    assert not (root / "resumed").exists()
    for name in NAMES[:2]:
        assert np.array_equal(poses(root / "both" / name), before[name])


def test_overwrite_and_exit_on_judge_every_sequence(sequences, registration_volume, tmp_path):
    ct = registration_volume[0]
    out = tmp_path / "both"
    for name in NAMES[:2]:
        (out / name).mkdir(parents=True)  # empty folders are no tracks: nothing to refuse
    # every frame 0 is suspect at 1 mm: exit status 3, once both sequences are written
    run = xvr(
        "track",
        "dicom",
        *sequences[:2],
        "-v",
        ct,
        "-o",
        out,
        *FAST,
        "--end_frame",
        "1",
        "--exit_on",
        "suspect",
        code=3,
    )
    assert "\n2 sequence(s), 2 frame(s): 0 ok, 2 suspect, 0 failed\n" in run.output
    assert "Exit status 3: a result is suspect (--exit_on suspect)" in run.output
    for name in NAMES[:2]:
        assert [row["verdict"] for row in read_track(out / name)["rows"]] == ["suspect"]
    # --overwrite replaces both; trusted to 100 mm every frame is ok: exit status 0
    xvr(
        "track",
        "dicom",
        *sequences[:2],
        "-v",
        ct,
        "-o",
        out,
        *FAST,
        "--end_frame",
        "1",
        "--overwrite",
        "--trust_mm",
        "100",
        "--exit_on",
        "suspect",
    )
    for name in NAMES[:2]:
        assert [row["verdict"] for row in read_track(out / name)["rows"]] == ["ok"]


def _track(launcher: list, sequences, ct, out) -> subprocess.CompletedProcess:
    args = [
        *launcher,
        "-m",
        "napari_xvr.cli",
        "track",
        "dicom",
        *sequences,
        "-v",
        ct,
        "-o",
        out,
        *FAST,
        "--verbose",
        "1",
    ]
    return subprocess.run(
        list(map(str, args)), env=ENV, capture_output=True, encoding="utf-8", errors="replace", timeout=300
    )


@pytest.mark.slow
def test_torchrun_shards_the_sequences_as_one_process_would(sequences, registration_volume, tmp_path):
    ct = registration_volume[0]
    one = _track([sys.executable], sequences, ct, tmp_path / "one")
    assert one.returncode == 0, one.stderr[-3000:]
    two = _track([TORCHRUN, "--standalone", "--nproc_per_node", "2"], sequences, ct, tmp_path / "two")
    assert two.returncode == 0, (two.stdout + two.stderr)[-3000:]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == list(NAMES)  # no temporaries
    for index, name in enumerate(NAMES):
        assert np.abs(poses(tmp_path / "two" / name) - poses(tmp_path / "one" / name)).max() == 0
        data = read_track(tmp_path / "two" / name)
        assert data["inputs"]["sequence"]["paths"] == [str(sequences[index].resolve())]
        assert data["summary"]["frames"] == 4
        assert two.stdout.count(f"-> {tmp_path / 'two' / name}: ") == 1  # tracked exactly once
    # round-robin: rank 0 takes sequences 1 and 3, rank 1 sequence 2
    assert f"[rank 0/2] [1/3] {sequences[0]} -> {tmp_path / 'two' / NAMES[0]}" in two.stdout
    assert f"[rank 1/2] [2/3] {sequences[1]} -> {tmp_path / 'two' / NAMES[1]}" in two.stdout
    assert f"[rank 0/2] [3/3] {sequences[2]} -> {tmp_path / 'two' / NAMES[2]}" in two.stdout
    total = one.stdout.strip().splitlines()[-1]
    assert total.startswith("3 sequence(s), 12 frame(s): ")
    assert two.stdout.count("sequence(s), ") == 1 and two.stdout.strip().splitlines()[-1] == total

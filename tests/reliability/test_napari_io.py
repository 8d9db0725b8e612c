"""The napari reader and writers through npe2's real machinery, and `animate`'s limits.

What a hostile user can hand them (edited or damaged files, headers claiming huge images, code in
a pickle, odd paths, full disks) gives either "not ours" (get_reader returns None, npe2 says the
reader refused the file) or one XvrInputError line that names the file; never a library's
exception, never an allocation past the memory budget, never a half-written or clobbered file.
No viewer (and no GL context) is needed: npe2 calls the same functions napari does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_xvr.errors import XvrInputError, XvrOutputError

ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def npe2_pm():
    import npe2

    pm = npe2.PluginManager.instance()
    try:
        pm.get_manifest("napari-xvr")
    except KeyError:
        pm.discover()
    return pm


def read(path):
    import npe2

    return npe2.read([str(path)], stack=False, plugin_name="napari-xvr")


def refused(path):
    with pytest.raises(ValueError, match="refused the file|not a compatible reader") as info:
        read(path)
    assert not isinstance(info.value, XvrInputError)


def fails(path, *words):
    with pytest.raises(XvrInputError) as info:
        read(path)
    text = str(info.value)
    assert "\n" not in text and (str(path) in text or Path(path).name in text), text
    for word in words:
        assert word in text, (word, text)
    return text


@pytest.fixture(scope="module")
def result_folder(synthetic_cases, example_volume, tmp_path_factory, npe2_pm):
    """A result folder written by the pipeline (init_only: poses, no optimisation)."""
    from napari_xvr.register import FixedInitializer
    from napari_xvr.register.volume_spec import VolumeSpec
    from napari_xvr.register.workflows.pipeline import register_files

    folder, truth = synthetic_cases
    pose = truth["cases"]["xray_000"]["true_pose"]
    out = tmp_path_factory.mktemp("results")
    init = FixedInitializer(pose["rotation_deg_zxy"], pose["translation_mm"])
    for _ in register_files(
        [folder / "xray_000.dcm"], VolumeSpec(example_volume[0]), init, out, init_only=True
    ):
        pass
    result = out / "xray_000"
    rows = [
        "stage,itr,r1,r2,r3,tx,ty,tz,similarity,time,lr_rot,lr_xyz,start",
        "1,0,1.0,2.0,3.0,4.0,850.0,6.0,0.5,0.1,0.01,1.0,0",
        "1,1,1.5,2.0,3.0,4.0,851.0,6.0,0.6,0.2,0.01,1.0,0",
    ]
    (result / "trajectory.csv").write_text("\n".join(rows) + "\n")
    return result


def edited(result_folder, tmp_path, edit=None, raw=None, keep_sha=False):
    folder = tmp_path / "edited"
    shutil.copytree(result_folder, folder)
    if raw is not None:
        (folder / "result.json").write_bytes(raw)
        return folder
    data = json.loads((result_folder / "result.json").read_text())
    if not keep_sha:
        data.pop("pose_sha256", None)
    (folder / "result.json").write_text(json.dumps(edit(data) if edit else data))
    return folder


def test_a_result_folder_opens(result_folder):
    layers = read(result_folder)
    assert [kw["metadata"]["napari_xvr"] for _, kw, _ in layers] == ["xray", "overlay"]
    assert len(layers[0][1]["metadata"]["trajectory"]) == 2


def _huge(d):
    d["intrinsics"].update(height=40000, width=40000)
    return d


def _nan(d):
    d["init_pose"] = {"matrix": [[float("nan")] * 4] * 4}
    return d


def _not_rigid(d):
    d["init_pose"] = {"matrix": np.diag([2.0, 2.0, 2.0, 1.0]).tolist()}
    return d


def _no_intrinsics(d):
    del d["intrinsics"]
    return d


def _pose_string(d):
    d["init_pose"] = "identity"
    return d


@pytest.mark.parametrize(
    "edit,words",
    [
        (_huge, ["height=40000"]),
        (_nan, ["NaN"]),
        (_not_rigid, ["not a rotation"]),
        (lambda d: [1, 2, 3], ["not a napari-xvr result"]),
        (_no_intrinsics, ["intrinsics"]),
        (_pose_string, ["init_pose"]),
        (lambda d: {**d, "inputs": [1]}, ["'inputs' must be an object"]),
    ],
)
def test_an_edited_result_json_is_one_line(result_folder, tmp_path, edit, words):
    folder = edited(result_folder, tmp_path, edit)
    fails(folder, *words)


@pytest.mark.parametrize(
    "raw,words",
    [
        (b"", ["empty"]),
        (b'{"init_pose": \xff\xfe}', ["not UTF-8"]),
        (b"{not json", ["not valid JSON"]),
    ],
)
def test_a_damaged_result_json_is_one_line(result_folder, tmp_path, raw, words):
    fails(edited(result_folder, tmp_path, raw=raw) / "result.json", *words)


def test_extra_keys_and_missing_inputs_still_open(result_folder, tmp_path):
    folder = edited(result_folder, tmp_path, lambda d: {**d, "mine": {"note": 1}}, keep_sha=True)
    assert len(read(folder)) == 2
    shutil.rmtree(folder)
    folder = edited(result_folder, tmp_path, lambda d: {**d, "inputs": {"xray": 5, "volume": ["a"]}})
    fails(folder, "inputs.xray is 5")


def test_a_huge_detector_is_rendered_within_the_memory_budget(result_folder, tmp_path, monkeypatch):
    """16000 x 16000 px is a valid detector, but a full-size DRR would need hundreds of GiB."""

    def big(d):
        d["intrinsics"].update(height=16000, width=16000, delx=0.1, dely=0.1)
        return d

    folder = edited(result_folder, tmp_path, big)
    monkeypatch.setenv("NAPARI_XVR_MAX_MEMORY_GB", "0.05")
    started = time.perf_counter()
    xray, drr = read(folder)
    assert time.perf_counter() - started < 30
    assert max(drr[0].shape) <= 1024 and drr[0].shape[0] == drr[0].shape[1]
    # the resampled DRR covers the same 1600 mm detector
    assert drr[1]["scale"][0] * drr[0].shape[0] == pytest.approx(1600.0, rel=0.02)


def test_pth_files(npe2_pm, tmp_path):
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save({"model_state_dict": {"w": torch.zeros(2)}, "config": {"lr": 1e-3}}, checkpoint)
    refused(checkpoint)
    junk = tmp_path / "random.pth"
    junk.write_bytes(np.random.default_rng(0).bytes(2000))
    refused(junk)
    det = {"sdd": 1020.0, "height": 64, "width": 64, "delx": 2.0, "dely": 2.0, "reverse_x_axis": False}
    ours = tmp_path / "upstream.pth"
    torch.save(
        {
            "detector": det,
            "init_pose": torch.eye(4)[None],
            "final_pose": torch.eye(4)[None],
            "gt": torch.rand(1, 1, 64, 64),
            "runtime": 1.0,
            "log": None,
        },
        ours,
    )
    [(data, kwargs, kind)] = read(ours)
    assert kind == "image" and data.shape == (64, 64)
    bad = tmp_path / "nan.pth"
    torch.save(
        {
            "detector": det,
            "init_pose": torch.full((1, 4, 4), float("nan")),
            "final_pose": torch.eye(4)[None],
            "gt": torch.rand(1, 1, 64, 64),
        },
        bad,
    )
    fails(bad, "NaN")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['XVR_PWNED']}",))


def test_a_pickle_with_code_is_never_run(npe2_pm, tmp_path, monkeypatch):
    marker = tmp_path / "PWNED"
    monkeypatch.setenv("XVR_PWNED", str(marker))
    evil = tmp_path / "evil.pth"
    torch.save({"detector": _Evil(), "init_pose": torch.eye(4), "final_pose": torch.eye(4)}, evil)
    fails(evil, "refused to load")
    assert not marker.exists()


@pytest.fixture(scope="module")
def damaged(synthetic_cases, example_volume, tmp_path_factory):
    import gzip

    import nibabel as nib

    folder = tmp_path_factory.mktemp("damaged")
    dcm = (synthetic_cases[0] / "xray_000.dcm").read_bytes()
    nii = Path(example_volume[0]).read_bytes()
    files = {
        "truncated.dcm": dcm[: len(dcm) // 2],
        "header_only.dcm": dcm[:400],
        "empty.dcm": b"",
        "notdicom.dcm": b"not a dicom at all" * 10,
        "truncated.nii.gz": nii[: len(nii) // 2],
        "truncated.nii": gzip.decompress(nii)[:200_000],
        "empty.nii.gz": b"",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    header = nib.Nifti1Header()
    header.set_data_shape((4000, 4000, 4000))
    header.set_data_dtype(np.float32)
    (folder / "bomb.nii").write_bytes(header.binaryblock + b"\0" * 1004)
    (folder / "bomb.mha").write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 4000 4000 4000\n"
        "ElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
    )
    return folder


@pytest.mark.parametrize(
    "name,words",
    [
        ("truncated.dcm", ["truncated"]),
        ("header_only.dcm", ["no pixel data"]),
        ("empty.dcm", ["empty (0 bytes)"]),
        ("notdicom.dcm", ["not a DICOM"]),
        ("truncated.nii.gz", ["truncated"]),
        ("truncated.nii", ["truncated"]),
        ("empty.nii.gz", ["empty"]),
        ("bomb.nii", ["4000 x 4000 x 4000", "memory"]),
        ("bomb.mha", ["4000 x 4000 x 4000", "memory"]),
    ],
)
def test_damaged_images_are_one_line(npe2_pm, damaged, name, words):
    started = time.perf_counter()
    fails(damaged / name, *words)
    assert time.perf_counter() - started < 20  # refused from the header, nothing allocated


def test_folders_and_odd_paths(npe2_pm, synthetic_cases, tmp_path):
    from napari_xvr.napari._reader import get_reader

    xray = synthetic_cases[0] / "xray_000.dcm"
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(xray, mixed / "good.dcm")
    (mixed / "notes.txt").write_text("hello")
    (mixed / "broken.dcm").write_bytes(xray.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="broken.dcm"):
        [(data, _, _)] = read(mixed)  # the good X-ray opens; the skipped one is named
    assert data.shape == (128, 128)
    odd = tmp_path / "dir with spaces ü #%" / "x ray #1 ü%20.dcm"
    odd.parent.mkdir()
    shutil.copy(xray, odd)
    assert read(odd)[0][0].shape == (128, 128)
    link = tmp_path / "link.dcm"
    link.symlink_to(xray)
    assert read(link)[0][0].shape == (128, 128)
    loop = tmp_path / "loop.dcm"
    loop.symlink_to(tmp_path / "loop2.dcm")
    (tmp_path / "loop2.dcm").symlink_to(loop)
    dangling = tmp_path / "dangling.dcm"
    dangling.symlink_to(tmp_path / "gone.dcm")
    for path in (loop, dangling, tmp_path / "nothing.dcm", tmp_path / "nothing"):
        assert get_reader(str(path)) is None
        with pytest.raises(ValueError):
            read(path)
    for form in (str(xray), xray, [xray], [str(xray)], (str(xray), xray)):
        assert get_reader(form) is not None, form
    for junk in (12345, None, [], [12], b"/tmp", str(tmp_path / "a.txt")):
        assert get_reader(junk) is None


@pytest.mark.skipif(ROOT, reason="root reads every file")
def test_a_file_without_read_permission(npe2_pm, synthetic_cases, tmp_path):
    path = tmp_path / "secret.dcm"
    shutil.copy(synthetic_cases[0] / "xray_000.dcm", path)
    path.chmod(0)
    try:
        fails(path, "permission")
    finally:
        path.chmod(0o644)


# ----------------------------------------------------------------------------------- writers
def _write(path, layer):
    import npe2

    return npe2.write(str(path), [layer], plugin_name="napari-xvr")


def test_the_written_result_reads_back(result_folder, tmp_path):
    from napari_xvr.io.result import read_result, read_trajectory

    xray = read(result_folder)[0]
    target = tmp_path / "my result ü #%.json"
    written = _write(target, xray)
    assert sorted(Path(p).name for p in written) == ["my result ü #%.csv", "my result ü #%.json"]
    assert read_result(target)["init_pose"] == read_result(result_folder)["init_pose"]
    back = read(target)
    assert back[0][1]["metadata"]["pose"] == xray[1]["metadata"]["pose"]
    assert back[0][1]["metadata"]["trajectory"] == xray[1]["metadata"]["trajectory"]
    assert read_trajectory(target) == xray[1]["metadata"]["trajectory"]  # the core reads it too
    # saved again over itself (napari's dialog asked): replaced, nothing else left
    _write(target, back[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my result ü #%.csv", "my result ü #%.json"]


def test_a_foreign_csv_is_never_overwritten(result_folder, tmp_path):
    xray = read(result_folder)[0]
    mine = tmp_path / "data.csv"
    mine.write_text("my,own\n1,2\n")
    with pytest.raises(XvrOutputError, match="data.csv"):
        _write(tmp_path / "data.json", xray)
    assert mine.read_text() == "my,own\n1,2\n" and not (tmp_path / "data.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_writer_refusals(result_folder, tmp_path):
    from napari_xvr.napari._writer import write_image, write_result

    with pytest.raises(XvrInputError, match="no registration result"):
        write_result(str(tmp_path / "x.json"), np.zeros((4, 4)), {"metadata": {}})
    folder = tmp_path / "a folder.json"
    folder.mkdir()
    xray = read(result_folder)[0]
    with pytest.raises(XvrOutputError, match="folder"):
        write_result(str(folder), xray[0], xray[1])
    with pytest.raises(XvrInputError, match="not an image"):
        write_image(str(tmp_path / "x.png"), np.zeros(5), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a folder.json"]
    nested = tmp_path / "new" / "sub" / "r.json"  # a missing folder is created
    write_result(str(nested), xray[0], xray[1])
    assert nested.is_file() and nested.with_suffix(".csv").is_file()


def test_images_round_trip(tmp_path):
    import imageio.v3 as iio

    from napari_xvr.napari._writer import write_image

    image = np.random.default_rng(0).random((3, 20, 30)).astype(np.float32)
    image[-1, 0, 0] = np.nan
    [npy] = write_image(str(tmp_path / "d.npy"), image, {})
    np.testing.assert_array_equal(np.load(npy), image[-1])
    [tif] = write_image(str(tmp_path / "d.tif"), image, {})
    np.testing.assert_array_equal(iio.imread(tif), image[-1])
    [png] = write_image(str(tmp_path / "d ü.png"), image, {})
    out = iio.imread(png)
    assert out.shape == (20, 30) and out.dtype == np.uint8 and out.max() == 255


@pytest.mark.skipif(ROOT, reason="root writes into read-only folders")
def test_a_read_only_folder(result_folder, tmp_path):
    from napari_xvr.napari._writer import write_image

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(XvrOutputError, match="locked"):
            write_image(str(locked / "d.png"), np.ones((4, 4)), {})
    finally:
        locked.chmod(0o755)


def test_a_full_disk_leaves_nothing_half_written(result_folder, tmp_path):
    """RLIMIT_FSIZE makes every write past 1 kB fail with EFBIG, as a full disk would."""
    script = textwrap.dedent("""
        import resource, signal, sys, numpy as np
        from napari_xvr.errors import XvrOutputError
        from napari_xvr.napari._writer import write_image, write_result
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
        import json
        meta = json.loads(open(sys.argv[1]).read())
        for call in (lambda: write_result(sys.argv[2] + "/r.json", None, meta),
                     lambda: write_image(sys.argv[2] + "/d.npy", np.ones((64, 64)), {})):
            try:
                call()
            except XvrOutputError as err:
                print("REFUSED", err)
    """)
    xray = read(result_folder)[0]
    meta = tmp_path / "meta.json"
    meta.write_text(
        json.dumps(
            {
                "metadata": {
                    "result": xray[1]["metadata"]["result"],
                    "trajectory": xray[1]["metadata"]["trajectory"] * 20,
                }
            }
        )
    )
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", script, str(meta), str(out)],
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(lines) == 2 and all("File too large" in line for line in lines), proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert list(out.iterdir()) == []


# ----------------------------------------------------------------------------------- animate
def test_animate_refuses_absurd_sizes_before_rendering(result_folder, tmp_path, monkeypatch):
    from napari_xvr.animate import animate_result

    for kwargs, words in (
        ({"max_frames": 10**9}, "--max_frames"),
        ({"max_size": 0}, "--max_size"),
        ({"max_frames": 0}, "--max_frames"),
        ({"fps": 0}, "--fps"),
        ({"path": tmp_path / "a.txt"}, "gif"),
    ):
        with pytest.raises(XvrInputError, match=words):
            animate_result(result_folder, kwargs.pop("path", tmp_path / "a.gif"), **kwargs)
    folder = tmp_path / "long"
    shutil.copytree(result_folder, folder)
    lines = (folder / "trajectory.csv").read_text().splitlines()
    (folder / "trajectory.csv").write_text("\n".join([lines[0]] + [lines[1]] * 10_000) + "\n")
    monkeypatch.setenv("NAPARI_XVR_MAX_MEMORY_GB", "0.5")  # 10000 frames need ~4 GiB
    started = time.perf_counter()
    with pytest.raises(XvrInputError, match="memory"):
        animate_result(folder, tmp_path / "a.gif", max_frames=10_000, max_size=2048)
    assert time.perf_counter() - started < 20
    assert not (tmp_path / "a.gif").exists()


def test_a_panel_is_never_thinner_than_two_pixels():
    from napari_xvr.animate import panel_intrinsics
    from napari_xvr.geometry import Intrinsics

    small = panel_intrinsics(Intrinsics(sdd=1000.0, height=16384, width=3, delx=1.0, dely=1.0), 256)
    assert (small.height, small.width) == (256, 2)
    assert small.dely * small.height == pytest.approx(16384.0)


# ----------------------------------------------------------------------------------- samples
def test_sample_data_needs_no_network(tmp_path):
    script = textwrap.dedent("""
        import socket
        def refuse(*a, **k):
            raise OSError("network disabled by the test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from napari_xvr.napari._sample_data import chest_ct, chest_labels
        [(ct, _, kind)] = chest_ct()
        [(labels, _, lkind)] = chest_labels()
        print("OK", kind, lkind, ct.shape == labels.shape)
    """)
    env = {**os.environ, "NAPARI_XVR_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, encoding="utf-8", env=env, timeout=300
    )
    assert "OK image labels True" in proc.stdout, proc.stdout + proc.stderr


def test_an_unusable_sample_cache_is_one_line(tmp_path, monkeypatch):
    from napari_xvr.napari._sample_data import cache_dir

    blocker = tmp_path / "a file"
    blocker.write_text("x")
    monkeypatch.setenv("NAPARI_XVR_CACHE", str(blocker))
    with pytest.raises(XvrOutputError, match="NAPARI_XVR_CACHE"):
        cache_dir()

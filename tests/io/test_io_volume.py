"""Volumes and labelmaps: DiffDRR's geometry, DICOM series, other formats, and bad input."""

from __future__ import annotations

import gzip
import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch
import torchio as tio
from diffdrr.data import read as diffdrr_read

from napari_xvr.errors import XvrInputError
from napari_xvr.io import read_image, read_volume
from napari_xvr.io.dicom_write import write_dicom_series
from napari_xvr.io.volume import dicom_series, write_volume


def _same_subject(ours, theirs) -> None:
    for key in ("volume", "density", "mask"):
        if theirs.get(key) is None:
            assert ours.get(key) is None
            continue
        np.testing.assert_array_equal(ours[key].affine, theirs[key].affine)
        assert torch.equal(ours[key].data, theirs[key].data), key
    assert torch.equal(ours.reorient, theirs.reorient)


@pytest.mark.parametrize("orientation", ["AP", "PA", None])
def test_nifti_matches_diffdrr(small_ct, orientation):
    ct, mask = small_ct
    ours = read_volume(ct, mask, orientation=orientation, density="diffdrr")
    theirs = diffdrr_read(str(ct), str(mask), orientation=orientation)
    _same_subject(ours, theirs)
    # centre of the volume at the world origin, as center_volume=True sets it up
    np.testing.assert_allclose(ours.density.get_center(), 0.0, atol=1e-6)


def test_the_linear_density_is_attenuation_relative_to_air(small_ct):
    """The default density: HU + 1000 (air 0, water half of 2000 HU bone), the geometry and the
    CT numbers DiffDRR's; an MR-like volume without air is taken from its own minimum."""
    ct, mask = small_ct
    ours, theirs = read_volume(ct, mask), diffdrr_read(str(ct), str(mask))
    assert torch.equal(ours.volume.data, theirs.volume.data)
    np.testing.assert_array_equal(ours.density.affine, theirs.density.affine)
    hu = ours.volume.data.double()
    expected = hu.clamp_min(-1000.0) + 1000.0
    expected = expected / expected.max()
    torch.testing.assert_close(ours.density.data.double(), expected, atol=1e-6, rtol=0)
    # lung (-850 HU) keeps 15 % of water's weight: DiffDRR's puts it near zero
    lung = (hu > -900) & (hu < -800)
    water = (hu > -50) & (hu < 50)
    ratio = float(ours.density.data[lung].mean() / ours.density.data[water].mean())
    assert 0.1 < ratio < 0.2, ratio
    assert float(theirs.density.data[lung].mean() / theirs.density.data[water].mean()) < 0.1
    with pytest.raises(XvrInputError, match="--density 'log'"):
        read_volume(ct, density="log")


def test_labels_and_bone_multiplier_match_diffdrr(small_ct):
    ct, mask = small_ct
    present = sorted(set(np.unique(nib.load(mask).get_fdata()).astype(int)) - {0})
    labels = present[:2]
    ours = read_volume(
        ct, mask, labels=",".join(map(str, labels)), bone_attenuation_multiplier=2.5, density="diffdrr"
    )
    theirs = diffdrr_read(str(ct), str(mask), labels, bone_attenuation_multiplier=2.5)
    _same_subject(ours, theirs)
    assert 0 < int((ours.density.data > 0).sum()) < ours.density.data.numel()


def _canonical(image: tio.Image) -> tio.Image:
    return tio.ToCanonical()(image)


def test_dicom_series_geometry_equals_nifti(small_ct, ct_series):
    nifti, dicom = read_image(small_ct[0]), read_image(ct_series)
    assert tuple(dicom.shape) == tuple(nifti.shape)
    a, b = _canonical(nifti), _canonical(dicom)
    np.testing.assert_allclose(b.affine, a.affine, atol=1e-4)
    assert torch.equal(a.data.to(torch.int32), b.data.to(torch.int32))
    # every voxel centre maps to the same point in mm (SimpleITK's own reading)
    ref, ser = sitk.ReadImage(str(small_ct[0])), sitk.ReadImage(dicom_series(ct_series).popitem()[1])
    np.testing.assert_allclose(ser.GetSpacing(), ref.GetSpacing(), rtol=1e-6)
    for index in [(0, 0, 0), (63, 0, 32), (10, 40, 5)]:
        flipped = (index[0], index[1], ref.GetSize()[2] - 1 - index[2])
        point = ref.TransformIndexToPhysicalPoint(index)
        match = [flipped, index][int(np.allclose(ser.TransformIndexToPhysicalPoint(index), point))]
        np.testing.assert_allclose(ser.TransformIndexToPhysicalPoint(match), point, atol=1e-4)
        assert ser[match] == ref[index]


def test_dicom_series_subject_matches_diffdrr_on_converted_nifti(ct_series, tmp_path):
    image = sitk.ReadImage(dicom_series(ct_series).popitem()[1])
    out = write_volume(image, tmp_path / "from_dicom.nii.gz")
    _same_subject(read_volume(ct_series, density="diffdrr"), diffdrr_read(str(out)))


def test_two_series_largest_or_chosen(small_ct, tmp_path):
    folder = tmp_path / "two"
    write_dicom_series(small_ct[0], tmp_path / "a", series_uid="1.2.826.0.1.3680043.10.1")
    small = sitk.ReadImage(str(small_ct[0]))[:, :, :10]
    write_dicom_series(small, tmp_path / "b", series_uid="1.2.826.0.1.3680043.10.2")
    folder.mkdir()
    for sub in ("a", "b"):
        for f in (tmp_path / sub).iterdir():
            shutil.copy(f, folder / f"{sub}_{f.name}")
    assert {k: len(v) for k, v in dicom_series(folder).items()} == {
        "1.2.826.0.1.3680043.10.1": 33,
        "1.2.826.0.1.3680043.10.2": 10,
    }
    assert read_image(folder).shape[-1] == 33
    chosen = read_image(folder, series_uid="1.2.826.0.1.3680043.10.2")
    assert chosen.shape[-1] == 10
    assert read_volume(folder, series_uid="1.2.826.0.1.3680043.10.2").density.shape[-1] == 10
    with pytest.raises(XvrInputError, match=r"1\.2\.3 is not here; present: .*\(33 files\)"):
        read_image(folder, series_uid="1.2.3")


def test_single_slice_file_reads_its_series_and_nested_folder(ct_series, tmp_path):
    one = sorted(ct_series.iterdir())[5]
    assert read_image(one).shape == read_image(ct_series).shape
    nested = tmp_path / "DICOM" / "S1"
    shutil.copytree(ct_series, nested)
    (tmp_path / "DICOMDIR").write_bytes(b"")  # a DICOMDIR beside the tree: its folder is searched
    assert read_image(tmp_path).shape == read_image(ct_series).shape


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd", ".nii"])
def test_other_formats_round_trip(small_ct, tmp_path, suffix):
    ref = sitk.ReadImage(str(small_ct[0]))
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(ref, str(path))
    ours, nifti = read_volume(path), read_volume(small_ct[0])
    _same_subject(ours, nifti)
    np.testing.assert_allclose(read_image(path).affine, read_image(small_ct[0]).affine, atol=1e-5)


def _save(path, array, affine=None):
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


@pytest.mark.parametrize(
    ("array", "pattern"),
    [
        (np.zeros((16, 16), np.float32), r"shape \(16, 16, 1\); a 3D image"),
        (np.zeros((16, 16, 1), np.int16), r"shape \(16, 16, 1\); a 3D image"),
        (np.zeros((8, 8, 8, 3), np.float32), r"4D with shape \(8, 8, 8, 3\); give a single 3D"),
        (np.zeros((8, 8, 8, 1, 2), np.float32), r"5D .*split the channels"),
    ],
)
def test_wrong_shapes(tmp_path, array, pattern):
    path = _save(tmp_path / "bad.nii.gz", array)
    with pytest.raises(XvrInputError, match=pattern) as err:
        read_volume(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_nan_volume_is_rejected_even_though_itk_zeroes_nans(tmp_path, small_ct):
    data = nib.load(small_ct[0]).get_fdata().astype(np.float32)
    data[3, 4, 5] = np.nan
    data[0, 0, 0] = np.inf
    path = _save(tmp_path / "nan.nii.gz", data)
    with pytest.raises(XvrInputError, match="holds 2 NaN or infinite voxels; replace them"):
        read_volume(path)
    mha = tmp_path / "nan.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((8, 8, 8), np.nan, np.float32)), str(mha))
    with pytest.raises(XvrInputError, match="512 NaN"):
        read_image(mha)


@pytest.mark.parametrize(
    ("value", "pattern"),
    [(0.0, "constant"), (-1000.0, "constant")],
)
def test_constant_volume(tmp_path, value, pattern):
    path = _save(tmp_path / "flat.nii.gz", np.full((8, 8, 8), value, np.float32))
    with pytest.raises(XvrInputError, match=pattern):
        read_volume(path)


def test_volume_outside_hu_range(tmp_path):
    array = np.full((8, 8, 8), -1000.0, np.float32)
    array[2:4] = 1500.0  # air and bone, no soft tissue: DiffDRR would crash in torch.min
    with pytest.raises(XvrInputError, match=r"no voxel lies in \(-800, 350\].*give a CT in HU"):
        read_volume(_save(tmp_path / "nohu.nii.gz", array))


def test_missing_unsupported_and_corrupt_files(tmp_path, small_ct):
    with pytest.raises(XvrInputError, match="no such volume file or folder"):
        read_volume(tmp_path / "nope.nii.gz")
    png = tmp_path / "ct.png"
    png.write_bytes(b"\x89PNG....")
    with pytest.raises(XvrInputError, match=r"unsupported volume format '\.png'.*NIfTI"):
        read_volume(png)
    data = small_ct[0].read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(XvrInputError, match="cut.nii.gz: the volume file is truncated") as err:
        read_volume(cut)
    assert "\n" not in str(err.value)
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(gzip.compress(b"not a nifti header" * 10))
    with pytest.raises(XvrInputError, match="garbage.nii.gz"):
        read_volume(garbage)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(XvrInputError, match="no DICOM series found"):
        read_volume(empty)


@pytest.mark.parametrize(
    ("cut", "pattern"),
    [
        (100, r"gap of 20 mm .* slices are 10 mm apart \(unreadable: slice_0003.dcm\)"),
        (3000, r"gap of 20 mm .* slices are 10 mm apart \(unreadable: slice_0003.dcm\)"),
    ],
)
def test_truncated_dicom_slice_in_series(ct_series, tmp_path, cut, pattern):
    broken = tmp_path / "broken"
    shutil.copytree(ct_series, broken)
    victim = sorted(broken.iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:-cut])
    with pytest.raises(XvrInputError, match=pattern) as err:
        read_image(broken)
    assert "\n" not in str(err.value)


def test_labelmap_grid_mismatch(small_ct, tmp_path):
    ct, mask = small_ct
    label = sitk.ReadImage(str(mask))
    with pytest.raises(XvrInputError, match="labelmap shape .* resample it onto the volume grid"):
        read_volume(ct, write_volume(label[:, :, :20], tmp_path / "short.nii.gz"))
    moved = sitk.Image(label)
    moved.SetOrigin(tuple(np.asarray(label.GetOrigin()) + 25.0))
    with pytest.raises(XvrInputError, match="grid does not lie on the volume.s.*origin by 4[0-9.]+ mm"):
        read_volume(ct, write_volume(moved, tmp_path / "moved.nii.gz"))


def test_labels_absent_from_mask(small_ct):
    ct, mask = small_ct
    present = sorted(set(np.unique(nib.load(mask).get_fdata()).astype(int)) - {0})
    with pytest.raises(XvrInputError, match=r"label\(s\) 9999 do not exist.*present labels: ") as err:
        read_volume(ct, mask, labels=[present[0], 9999])
    assert f"{present[0]}, {present[1]}" in str(err.value)
    with pytest.raises(XvrInputError, match="--labels needs a labelmap"):
        read_volume(ct, labels="1")
    with pytest.raises(XvrInputError, match="comma-separated integers"):
        read_volume(ct, mask, labels="1,b")


def test_empty_labelmap_says_so(small_ct, tmp_path):
    ct, mask = small_ct
    label = sitk.ReadImage(str(mask)) * 0
    with pytest.raises(XvrInputError, match=r"none \(the labelmap is empty\)"):
        read_volume(ct, write_volume(label, tmp_path / "zero.nii.gz"), labels=3)


def test_write_volume_rejects_bad_targets(small_ct, tmp_path):
    image = sitk.ReadImage(str(small_ct[0]))
    with pytest.raises(XvrInputError, match=r"cannot write '\.txt'"):
        write_volume(image, tmp_path / "out.txt")
    with pytest.raises(XvrInputError, match="cannot write|is a folder"):
        write_volume(image, tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(XvrInputError, match="is a file, not a folder"):
        write_volume(image, blocker / "ct.nii.gz")
    out = write_volume(image, tmp_path / "ok.nrrd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "ok.nrrd"]
    assert sitk.ReadImage(str(out)).GetSize() == image.GetSize()

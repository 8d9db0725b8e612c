"""Session files: a round trip, paths relative to a moved folder, and the mistakes named."""

import json
import shutil

import numpy as np
import pytest

from napari_xvr.errors import XvrInputError, XvrOutputError
from napari_xvr.session import Session, read_session, write_session


def _session(folder):
    (folder / "ct.nii.gz").write_bytes(b"x")
    (folder / "x.dcm").write_bytes(b"x")
    return Session(
        [
            {"name": "ct", "role": "volume", "path": folder / "ct.nii.gz"},
            {"name": "x", "role": "xray", "path": folder / "x.dcm"},
        ],
        pose=np.eye(4).tolist(),
        history={"index": 0, "entries": []},
        options={"drr": {"orientation": "AP", "live": False}},
    )


def test_round_trip_with_a_moved_folder(tmp_path):
    first = tmp_path / "a"
    first.mkdir()
    written = write_session(first / "work", _session(first))
    assert written.name == "work.xvr-session.json"
    saved = json.loads(written.read_text())
    assert saved["layers"][0]["path"] == "ct.nii.gz"  # relative: the folder can move
    moved = tmp_path / "b"
    shutil.move(first, moved)
    session = read_session(moved / "work.xvr-session.json")
    assert session.layers[1]["path"] == str((moved / "x.dcm").resolve())
    assert session.options["drr"] == {"orientation": "AP", "live": False}
    np.testing.assert_array_equal(session.pose, np.eye(4))


def test_mistakes_are_named(tmp_path):
    path = write_session(tmp_path / "s.xvr-session.json", _session(tmp_path))
    with pytest.raises(XvrOutputError, match="exists"):
        write_session(path, _session(tmp_path))
    write_session(path, _session(tmp_path), overwrite=True)
    (tmp_path / "x.dcm").unlink()
    with pytest.raises(XvrInputError, match=r"files are gone: x \("):
        read_session(path)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "version": 99}))
    with pytest.raises(XvrInputError, match="newer"):
        read_session(path)
    path.write_text(json.dumps({"cases": {}}))
    with pytest.raises(XvrInputError, match="not a napari-xvr session"):
        read_session(path)
    bad = _session(tmp_path)
    bad.pose = [[float("nan")] * 4] * 4
    with pytest.raises(XvrInputError, match="NaN"):
        write_session(tmp_path / "nan", bad)
    assert not (tmp_path / "nan.xvr-session.json").exists()

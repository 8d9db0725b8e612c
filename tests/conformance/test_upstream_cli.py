"""Every option of upstream 0.1.0's `xvr register` exists in ours with the same meaning and default
(or a documented difference), and upstream's command lines parse unchanged."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest

from napari_xvr import defaults
from napari_xvr.cli.register import register as register_group

# upstream's parameter -> ours, where the names differ
OURS = {"imagepath": "volume", "labelpath": "mask", "savepath": "outpath", "files": "xray"}
CKPT = {"model": "ckptpath", "restart": "previous"}
# upstream options napari-xvr answers differently on purpose (README: table of defaults)
DOCUMENTED = {name for name, d in defaults.REGISTER.items() if d.differs} | {"n_itrs", "patience"}


def _upstream_params(upstream, command: str) -> dict[str, object]:
    """{name: default} of upstream's `register <command>`: its signature and config dataclasses."""
    from xvr.cli.configs.register import BaseParams, RunParams

    cli = importlib.import_module("xvr.cli.register")  # the package's `register` is the App

    params = {}
    for cls in (BaseParams, RunParams):
        for field in dataclasses.fields(cls):
            default = field.default
            if field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            params[field.name] = default
    for name, p in inspect.signature(getattr(cli, command)).parameters.items():
        if name not in ("base", "run"):
            params[name] = p.default
    return params


def _parse(command: str, args: list[str]) -> dict:
    cmd = register_group.commands[command]
    ctx = cmd.make_context(command, list(args))  # its parse_args translates upstream spellings
    return ctx.params


@pytest.mark.parametrize("command", ["model", "dicom", "fixed", "restart"])
def test_every_upstream_register_option_exists_in_ours(upstream, command, tmp_path):
    cmd = register_group.commands[command]
    ours = {p.name: p for p in cmd.params}
    for name, default in _upstream_params(upstream, command).items():
        mine = CKPT.get(command) if name == "ckpt" else OURS.get(name, name)
        if command == "fixed" and name in ("rot", "xyz"):
            mine = name
        assert mine in ours, f"xvr register {command}: upstream's {name!r} has no option here"
        if name in DOCUMENTED or default in (inspect.Parameter.empty, dataclasses.MISSING, None):
            continue
        ours_default = ours[mine].default
        if isinstance(default, list):
            default = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
        assert ours_default == default or str(ours_default) == str(default), (name, ours_default, default)


def test_upstream_spellings_are_accepted(tmp_path):
    xray = tmp_path / "a.dcm"
    xray.write_bytes(b"")
    ct = tmp_path / "ct.nii.gz"
    ct.write_bytes(b"")
    # xvr 0.1.0 (cyclopts): --files, --imagepath, --savepath, kebab case, lists as words, --no-x
    params = _parse(
        "dicom",
        [
            "--files",
            str(xray),
            str(xray),
            "--imagepath",
            str(ct),
            "--savepath",
            str(tmp_path / "o"),
            "--scales",
            "24",
            "12",
            "6",
            "--n-itrs",
            "500",
            "500",
            "500",
            "--patience",
            "10",
            "10",
            "10",
            "--labels",
            "1",
            "2",
            "3",
            "4",
            "7",
            "--crop",
            "100",
            "--linearize",
            "--subtract-background",
            "--no-equalize",
            "--init-only",
            "--lr-reduce-factor",
            "0.5",
            "--max-n-plateaus",
            "2",
            "--metric",
            "gncc",
            "--reverse-x-axis",
            "--saveplot",
            "--device",
            "cpu",
        ],
    )
    assert params["xray"] == (str(xray), str(xray)) and params["volume"] == str(ct)
    assert params["scales"] == "24,12,6" and params["n_itrs"] == "500,500,500"
    assert params["patience"] == 10 and params["labels"] == "1,2,3,4,7"
    assert params["linearize"] and params["subtract_background"] and not params["equalize"]
    assert params["init_only"] and params["saveplot"] and params["reverse_x_axis"]
    assert params["lr_reduce_factor"] == 0.5 and params["metric"] == "gncc"
    # the positional checkpoint of `model` and pose of `fixed`
    ckpt = tmp_path / "m.pth"
    ckpt.write_bytes(b"")
    params = _parse("model", ["--files", str(xray), "--imagepath", str(ct), "--savepath", "o", str(ckpt)])
    assert params["ckptpath"] == str(ckpt)
    params = _parse(
        "model", ["--files", str(xray), "--ckpt", str(ckpt), "--imagepath", str(ct), "--savepath", "o"]
    )
    assert params["ckptpath"] == str(ckpt)
    params = _parse(
        "fixed",
        [
            "--files",
            str(xray),
            "--imagepath",
            str(ct),
            "--savepath",
            "o",
            "--rot",
            "0",
            "-10.5",
            "5",
            "--xyz",
            "0",
            "850",
            "0",
        ],
    )
    assert params["rot"] == "0,-10.5,5" and params["xyz"] == "0,850,0"
    # and the reference README's (click) spellings still parse as before
    params = _parse(
        "dicom",
        [
            str(xray),
            "-v",
            str(ct),
            "-o",
            "o",
            "--scales",
            "8,4,2",
            "--n_itrs",
            "30,20,10",
            "--labels",
            "1,2",
            "--init_only",
        ],
    )
    assert params["scales"] == "8,4,2" and params["init_only"] and params["xray"] == (str(xray),)


def test_the_readme_shows_the_table_of_differences():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "command-line.md").read_text()
    assert defaults.differences_markdown() in readme, "run python -m napari_xvr.defaults and paste it"

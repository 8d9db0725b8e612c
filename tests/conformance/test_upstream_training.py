"""`xvr train` accepts every field of upstream 0.1.0's TrainParams, in both spellings, with its default."""

from __future__ import annotations

import dataclasses
import types
import typing

import click
import pytest

from napari_xvr import defaults
from napari_xvr.cli.aliases import kebab
from napari_xvr.cli.train import train as train_command

REQUIRED = [
    "-v",
    ".",
    "-o",
    "out",
    "--sdd",
    "1020",
    "--height",
    "32",
    "--delx",
    "2",
    *(w for k in ("r1", "r2", "r3", "tx", "ty", "tz") for w in (f"--{k}", "-1", "1")),
]
PATHS = {"volpath", "maskpath", "sample_weights", "ckptpath", "warp"}
CHOICES = {
    "orientation": "PA",
    "parameterization": "euler_angles",
    "convention": "XYZ",
    "patch_size": "8,8,8",
    "outpath": "elsewhere",
}


def _fields(upstream) -> list[dataclasses.Field]:
    from xvr.cli.configs.train import TrainParams

    return list(dataclasses.fields(TrainParams))


def _base_type(field: dataclasses.Field):
    hint = field.type
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    return hint


def _option(name: str) -> click.Option:
    return next(p for p in train_command.params if p.name == name)


def _parse(*args: str) -> dict:
    return train_command.make_context("train", [*REQUIRED, *args]).params


def _sample(field: dataclasses.Field, tmp_path) -> tuple[list[str], object]:
    """Words to pass after the option, and the value click should hand the command."""
    hint = _base_type(field)
    if field.name in PATHS:
        path = tmp_path / f"{field.name}.txt"
        path.write_text("1\n")
        return [str(path)], str(path)
    if field.name in CHOICES:
        return [CHOICES[field.name]], CHOICES[field.name]
    if typing.get_origin(hint) is tuple:
        return ["-2", "3"], (-2.0, 3.0)
    if hint is int:
        return ["7"], 7
    if hint is float:
        return ["0.25"], 0.25
    return ["some-name"], "some-name"


def test_every_trainparams_field_is_an_option_in_both_spellings(upstream, tmp_path):
    checked = []
    for field in _fields(upstream):
        option = _option(field.name)  # StopIteration here: the option is missing
        ours = f"--{field.name}"
        assert ours in option.opts, (field.name, option.opts)
        if _base_type(field) is bool:
            for spelling in (ours, kebab(ours)):
                assert _parse(spelling)[field.name] is True, spelling
            for spelling in (f"--no-{field.name}", kebab(f"--no-{field.name}")):
                assert _parse(spelling)[field.name] is False, spelling
        else:
            words, value = _sample(field, tmp_path)
            for spelling in (ours, kebab(ours)):
                assert _parse(spelling, *words)[field.name] == value, (spelling, words)
        checked.append(field.name)
    assert {
        "weight_haus",
        "n_samples",
        "geodesic_only",
        "img_threshold",
        "mask_threshold",
        "group",
        "reverse_x_axis",
    } <= set(checked)


def test_defaults_match_upstream_unless_defaults_py_says_why(upstream):
    compared = 0
    for field in _fields(upstream):
        if field.default is dataclasses.MISSING:  # required upstream (volpath, sdd, r1, ...)
            continue
        entry = defaults.TRAIN.get(field.name)
        if entry is not None and entry.ours != entry.upstream:  # listed as differing from 0.1.0
            assert entry.why, f"defaults.TRAIN[{field.name!r}] differs from xvr 0.1.0 without a reason"
            continue
        ours = _option(field.name).default
        if isinstance(field.default, float):
            assert ours == pytest.approx(field.default), field.name
        else:
            assert ours == field.default, field.name
        if entry is not None:
            assert entry.upstream == field.default or entry.upstream == pytest.approx(field.default)
        compared += 1
    assert compared >= 30


def test_kebab_spellings_are_hidden_from_help():
    text = train_command.get_help(click.Context(train_command))
    assert "--weight_haus" in text and "--weight-haus" not in text
    assert "--option-name" in text  # the one line that says they exist

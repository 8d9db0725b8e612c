"""`xvr export`: registration results as upstream xvr's .pth or as ITK transforms (3D Slicer)."""

from __future__ import annotations

from pathlib import Path

import click

from ._help import CONTEXT, UserPath


def result_stem(data: dict, item) -> str:
    """Name of a result's outputs: the X-ray's stem, else the result folder or file name."""
    xray = data.get("inputs", {}).get("xray")
    if xray:
        return Path(xray).name.rsplit(".", 1)[0]
    path = Path(item)
    if path.name == "result.json":
        path = path.parent
    return path.stem if path.suffix.lower() == ".pth" else path.name


def _targets(results, outpath: Path, fmt: str, ext: str) -> list[tuple[str, dict, Path]]:
    """(RESULT, its data, output file) for each RESULT, all read before anything is written."""
    from ..errors import XvrInputError
    from ..io.itk_export import ITK_SUFFIXES
    from ..io.result import read_result

    suffix = ".pth" if fmt == "xvr" else f".{ext}"
    names = (".pth",) if fmt == "xvr" else ITK_SUFFIXES
    single = len(results) == 1 and outpath.suffix.lower() in names and not outpath.is_dir()
    if outpath.exists() and not outpath.is_dir() and not single:
        raise XvrInputError(
            f"-o {outpath}: is a file; give a folder (or, for one RESULT, a file name ending in {suffix})"
        )
    out: list = []
    seen: dict = {}
    for item in results:
        data = read_result(item)
        stem = result_stem(data, item)
        target = outpath if single else outpath / f"{stem}{suffix}"
        if target in seen:
            raise XvrInputError(
                f"{item} and {seen[target]} would both be written to {target}; "
                "export them to different -o folders"
            )
        seen[target] = item
        out.append((item, data, target))
    return out


@click.command(context_settings=CONTEXT)
@click.argument("result", nargs=-1, required=True, type=UserPath(exists=True))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["xvr", "itk"]),
    required=True,
    help="xvr: upstream xvr's <stem>.pth (its RestartPose and scripts read it); itk: the "
    "final pose as an ITK transform (volume LPS -> C-arm camera) + <stem>_intrinsics.json",
)
@click.option(
    "-o",
    "--outpath",
    type=UserPath(path_type=Path),
    required=True,
    help="Output folder (one file per RESULT), or a file name for a single RESULT",
)
@click.option(
    "--itk_ext",
    type=click.Choice(["tfm", "h5"]),
    default="tfm",
    show_default=True,
    help="ITK transform file type (text .tfm or HDF5 .h5)",
)
@click.option(
    "-v",
    "--volume",
    type=UserPath(exists=True),
    default=None,
    help="CT the pose refers to (itk; default: the result's inputs.volume, which an xvr .pth lacks)",
)
@click.option(
    "--orientation",
    type=click.Choice(["AP", "PA"]),
    default=None,
    help="C-arm frame of the pose (itk; default: the result's, AP for an xvr .pth)",
)
@click.option("--overwrite/--no-overwrite", default=False, help="Replace existing output files")
def export(result, fmt, outpath, itk_ext, volume, orientation, overwrite):
    """Export registration RESULTs (folders, result.json or xvr .pth) for other tools."""
    from ..errors import XvrInputError
    from ..io.itk_export import itk_outputs, write_itk
    from ..io.upstream import write_upstream_result

    targets = _targets(result, outpath, fmt, itk_ext)
    if not overwrite:
        for _, _, target in targets:
            for path in itk_outputs(target) if fmt == "itk" else (target,):
                if path.exists():
                    raise XvrInputError(
                        f"{path} already exists; pass --overwrite to replace it or choose another -o"
                    )
    for item, data, target in targets:
        if fmt == "xvr":
            write_upstream_result(data, target, overwrite=overwrite)
            click.echo(f"{item} -> {target}")
        else:
            tfm, meta = write_itk(data, target, volume, orientation, overwrite=overwrite)
            click.echo(f"{item} -> {tfm} (+ {meta.name})")


COMMANDS = [export]

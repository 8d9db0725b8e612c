"""Upstream xvr 0.1.0's command lines, accepted unchanged by `xvr register ...`.

xvr 0.1.0 (cyclopts) spells options in kebab case (`--n-itrs`: hidden aliases, see
:func:`.aliases.kebab_aliases`), takes
the X-rays with `--files A B ...`, the volume with `--imagepath`, the mask with `--labelpath`, the
output with `--savepath`, lists as separate words (`--scales 24 12 6`), and the checkpoint
(`model`, `restart`) or the pose (`fixed`: rot then xyz) as positional arguments. This module
rewrites such an argument list into ours before click parses it; our own spellings pass through.
"""

from __future__ import annotations

import re

import click

from ..errors import XvrInputError
from ._help import SectionedCommand
from .aliases import kebab_aliases

RENAMES = {"--imagepath": "--volume", "--labelpath": "--mask", "--savepath": "--outpath"}
LISTS = {"--scales", "--n-itrs", "--n_itrs", "--labels", "--patience"}
TRIPLES = {"--rot", "--xyz"}
POSITIONAL = {"model": ("--ckptpath",), "restart": ("--previous",), "fixed": ("--rot", "--xyz")}
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _takes_value(command: click.Command, name: str) -> bool:
    for param in command.params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return not param.is_flag and not param.count
    return True  # unknown: let click report it


def _numbers(args: list[str], start: int, limit: int | None = None) -> int:
    """How many number words follow `start` (at most `limit`)."""
    end = start
    while end < len(args) and _NUMBER.match(args[end]) and (limit is None or end - start < limit):
        end += 1
    return end - start


def _joined(option: str, words: list[str]) -> str:
    if option == "--patience" and len(set(words)) > 1:
        raise XvrInputError(
            f"--patience {' '.join(words)}: napari-xvr takes one patience for every scale; give one number"
        )
    return words[0] if option == "--patience" else ",".join(words)


def translate(command: click.Command, args: list[str]) -> list[str]:
    """`args` in xvr 0.1.0's form rewritten into ours (ours are returned unchanged)."""
    upstream = "--files" in args
    out: list[str] = []
    files: list[str] = []
    positionals: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        name, eq, value = word.partition("=")
        name = RENAMES.get(name, name)
        if name == "--ckpt":
            name = POSITIONAL.get(command.name or "", ("--ckptpath",))[0]
        if name == "--files":
            n = 0
            while i + 1 + n < len(args) and not args[i + 1 + n].startswith("-"):
                n += 1
            files.extend(args[i + 1 : i + 1 + n])
            i += 1 + n
            continue
        if not name.startswith("-") or name == "-":
            (positionals if upstream else out).append(word)
            i += 1
            continue
        if eq:
            out.append(f"{name}={value}")
            i += 1
            continue
        if name in LISTS | TRIPLES:
            n = _numbers(args, i + 1, 3 if name in TRIPLES else None)
            if n > 1 or (n == 1 and name == "--patience"):
                out += [name, _joined(name, args[i + 1 : i + 1 + n])]
                i += 1 + n
                continue
        out.append(name)
        if _takes_value(command, name) and i + 1 < len(args):
            out.append(args[i + 1])
            i += 1
        i += 1
    if upstream:
        names = POSITIONAL.get(command.name or "", ())
        if command.name == "fixed" and len(positionals) == 6:
            out += ["--rot", ",".join(positionals[:3]), "--xyz", ",".join(positionals[3:])]
        elif len(names) == 1 and len(positionals) == 1:
            out += [names[0], positionals[0]]
        elif positionals:
            raise XvrInputError(
                f"unexpected argument(s) {' '.join(positionals)}: with --files, give the X-rays after --files"
            )
        out += files
    return out


class UpstreamCompatibleCommand(SectionedCommand):
    """A sectioned command that also parses xvr 0.1.0's spellings (see :func:`translate`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kebab_aliases(self)

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, translate(self, list(args)))

"""xvr 0.1.0's kebab-case spellings (``--n-total-itrs``) as hidden aliases of our ``--n_total_itrs``.

Usage: ``kebab_aliases(command)`` after the command is built (e.g. applied to the object that
``@click.command`` returns).  Every ``--a_b`` name of every option, the ``--no-a_b`` half of an
on/off switch included, is also accepted as ``--a-b`` / ``--no-a-b``.  The aliases are left out of
``--help`` (one line in the command's epilog says they exist), so the help stays one name per
option.
"""

from __future__ import annotations

import click

EPILOG = "Every --option_name is also accepted in xvr 0.1.0's spelling, --option-name."


def kebab(name: str) -> str:
    """'--no-reverse_x_axis' -> '--no-reverse-x-axis' (the leading dashes are kept)."""
    stripped = name.lstrip("-")
    return name[: len(name) - len(stripped)] + stripped.replace("_", "-")


def _aliases(names: list[str], taken: set[str]) -> list[str]:
    out = []
    for name in names:
        alias = kebab(name)
        if name.startswith("--") and alias != name and alias not in taken:
            out.append(alias)
            taken.add(alias)
    return out


def _hide(option: click.Option, hidden: set[str]) -> None:
    """Drop `hidden` names from the option's help record (not from its parser)."""
    original = option.get_help_record

    def get_help_record(ctx: click.Context):
        opts, secondary = option.opts, option.secondary_opts
        option.opts = [o for o in opts if o not in hidden]
        option.secondary_opts = [o for o in secondary if o not in hidden]
        try:
            return original(ctx)
        finally:
            option.opts, option.secondary_opts = opts, secondary

    option.get_help_record = get_help_record  # type: ignore[method-assign]


def kebab_aliases(command: click.Command, epilog: bool = True) -> click.Command:
    """Give every ``--x_y`` option of `command` the alias ``--x-y``; returns `command`."""
    taken = {
        name for p in command.params if isinstance(p, click.Option) for name in (*p.opts, *p.secondary_opts)
    }
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        primary = _aliases(param.opts, taken)
        secondary = _aliases(param.secondary_opts, taken)
        if not (primary or secondary):
            continue
        param.opts = [*param.opts, *primary]
        param.secondary_opts = [*param.secondary_opts, *secondary]
        _hide(param, set(primary) | set(secondary))
    if epilog and EPILOG not in (command.epilog or ""):
        command.epilog = f"{command.epilog}\n\n{EPILOG}" if command.epilog else EPILOG
    return command


def all_names(command: click.Command) -> dict[str, str]:
    """Every option name the parser accepts -> the parameter it sets (for tests and checks)."""
    return {
        name: p.name
        for p in command.params
        if isinstance(p, click.Option)
        for name in (*p.opts, *p.secondary_opts)
    }

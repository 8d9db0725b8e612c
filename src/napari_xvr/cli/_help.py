"""Categorised --help: options listed under section headings, like the reference."""

from __future__ import annotations

import math
import os

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class FiniteFloat(click.ParamType):
    """A float that is a real number: `nan` and `inf` are refused with the option's name."""

    name = "float"

    def convert(self, value, param, ctx):
        if isinstance(value, float | int) and math.isfinite(value):
            return float(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; give a real value", param, ctx)
        return number


FINITE = FiniteFloat()


class Starts(click.ParamType):
    """A count of more starts (0 or more), or 'auto'."""

    name = "N|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or str(value).strip().lower() == "auto":
            return value if isinstance(value, int) else "auto"
        try:
            count = int(str(value).strip())
        except ValueError:
            count = -1
        if count < 0:
            self.fail(f"{value!r}: give a number of starts (0 or more) or 'auto'", param, ctx)
        return count


STARTS = Starts()


class UserPath(click.Path):
    """click.Path with ``~`` expanded first, also where no shell did it (quoted, from a script):
    ``-o "~/res"`` never makes a folder literally named ``~``."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.startswith("~"):
            value = os.path.expanduser(value)
        return super().convert(value, param, ctx)


class SectionedCommand(click.Command):
    """A command whose options carry a `section` (set with :func:`section`)."""

    def format_options(self, ctx, formatter):
        sections: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is None:
                continue
            name = getattr(param, "section", None) or "Other options"
            sections.setdefault(name, []).append(record)
        for name, records in sections.items():
            with formatter.section(name):
                formatter.write_dl(records)


def section(name: str, *options):
    """Decorate a command with `options` (click.option decorators) under heading `name`."""

    def decorator(func):
        for option in reversed(options):
            func = option(func)
            func.__click_params__[-1].section = name
        return func

    return decorator


def float_list(ctx, param, value):
    """Callback: '1,2,3' -> [1.0, 2.0, 3.0] with a clear error."""
    if value is None:
        return None
    try:
        return [float(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError as err:
        raise click.BadParameter(f"{value!r}: give comma-separated numbers") from err

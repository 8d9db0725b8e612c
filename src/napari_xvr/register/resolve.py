"""Which flip and orientation a registration uses: the rule, once, for the CLI, the widgets and
scripts.

An option the user gave explicitly wins; otherwise the initializer's own record wins (a model's
checkpoint knows how its training CTs were oriented and flipped, a previous result how it was
registered); otherwise the option's default. When an explicit option contradicts the record, a
note says so (the run goes on as told).
"""

from __future__ import annotations

import dataclasses

FOLLOWED = ("reverse_x_axis", "orientation")
"""The VolumeSpec fields an initializer's record can set."""


def recorded_conventions(initializer) -> dict:
    """What `initializer` recorded of the fields in :data:`FOLLOWED` (``conventions()``; an
    initializer without a record: nothing)."""
    record = getattr(initializer, "conventions", None)
    found = record() if callable(record) else {}
    return {k: v for k, v in (found or {}).items() if k in FOLLOWED and v is not None}


def resolve_spec(spec, initializer, explicit=()) -> tuple:
    """(`spec` with the flip and orientation the rule picks, notes); `explicit` names the fields
    the user set (e.g. given on the command line)."""
    recorded = recorded_conventions(initializer)
    where = getattr(initializer, "name", "the initializer")
    changes, notes = {}, []
    for name in FOLLOWED:
        if name not in recorded:
            continue
        value = bool(recorded[name]) if name == "reverse_x_axis" else recorded[name]
        if name in explicit:
            if getattr(spec, name) != value:
                notes.append(
                    f"--{name} {getattr(spec, name)} differs from the {where}'s "
                    f"{value} (kept as given; omit it to follow the {where})"
                )
        elif getattr(spec, name) != value:
            changes[name] = value
    return (dataclasses.replace(spec, **changes) if changes else spec), notes

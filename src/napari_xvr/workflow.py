"""The visual registration workflow as steps with a state: load -> initialise -> register ->
check -> save, as a 3D Slicer module guides it. What each step needs and when it counts as done
is decided here, once; the napari Workflow panel only gathers the facts and shows the steps."""

from __future__ import annotations

from dataclasses import dataclass

DONE, CURRENT, TODO, WARNING = "done", "current", "todo", "warning"
MARKS = {DONE: "\u2714", CURRENT: "\u25b6", TODO: "\u25cb", WARNING: "\u26a0"}


@dataclass(frozen=True)
class WorkflowFacts:
    """What the session holds now (layer and widget names, or None where there is none)."""

    volume: str | None = None
    xray: str | None = None
    start: str | None = None  # where the start pose comes from ("header", "landmarks", ...)
    registered: bool = False
    verdict: str | None = None  # "ok", "suspect", "failed"
    verdict_detail: str = ""
    saved: str | None = None  # the result's folder


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    state: str
    detail: str
    dock: str  # the plugin's dock widget that does this step

    @property
    def text(self) -> str:
        return f"{MARKS[self.state]} {self.title}: {self.detail}"


def start_of(pose_source: str | None, register_init: str | None, default_init: str | None) -> str | None:
    """Where the registration's first pose comes from: the Register dock's initialisation when
    the user chose one other than its default, else the pose set in the DRR dock (its history's
    latest source: header, landmarks, manual, ...), else nothing chosen yet."""
    if register_init is not None and register_init != default_init:
        return register_init
    if pose_source is not None:
        return f"the DRR widget's pose ({pose_source})"
    return None


def workflow_steps(facts: WorkflowFacts) -> list[Step]:
    """The five steps for `facts`; the first one not done is the current one."""
    loaded = facts.volume is not None and facts.xray is not None
    missing = [what for what, name in (("a volume", facts.volume), ("an X-ray", facts.xray)) if name is None]
    rows = [
        (
            "load",
            "Load",
            loaded,
            f"{facts.volume} and {facts.xray}"
            if loaded
            else f"open {' and '.join(missing)} (File > Open, or drag files in)",
            "DRR and pose",
        ),
        (
            "initialise",
            "Initialise",
            facts.start is not None,
            f"start from {facts.start}"
            if facts.start
            else "a first pose: the X-ray's header, a model, landmarks or by hand (drag to align)",
            "DRR and pose",
        ),
        (
            "register",
            "Register",
            facts.registered,
            "registered" if facts.registered else "run the multiscale registration",
            "Register",
        ),
        (
            "check",
            "Check",
            facts.verdict == "ok",
            _check_detail(facts),
            "Register",
        ),
        (
            "save",
            "Save",
            facts.saved is not None,
            f"saved to {facts.saved}"
            if facts.saved
            else "write the result (JSON + CSV), the ITK .tfm for 3D Slicer, upstream's .pth",
            "Register",
        ),
    ]
    steps, current_found = [], False
    for key, title, done, detail, dock in rows:
        if key == "check" and facts.verdict in ("suspect", "failed"):
            state = WARNING
        elif done:
            state = DONE
        elif not current_found:
            state = CURRENT
        else:
            state = TODO
        current_found = current_found or state in (CURRENT, WARNING)
        steps.append(Step(key, title, state, detail, dock))
    return steps


def _check_detail(facts: WorkflowFacts) -> str:
    if facts.verdict is None:
        return "the verdict, the comparison modes, Evaluate with a true pose"
    detail = facts.verdict.upper() if facts.verdict != "ok" else "ok"
    return f"{detail}: {facts.verdict_detail}" if facts.verdict_detail else detail

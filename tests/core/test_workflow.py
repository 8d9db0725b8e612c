"""The workflow's steps and states (napari_xvr.workflow): the first step not done is current."""

from __future__ import annotations

from napari_xvr.workflow import CURRENT, DONE, TODO, WARNING, WorkflowFacts, workflow_steps


def states(facts: WorkflowFacts) -> dict[str, str]:
    return {step.key: step.state for step in workflow_steps(facts)}


def test_an_empty_session_starts_at_load_and_names_what_is_missing():
    steps = workflow_steps(WorkflowFacts())
    assert [s.key for s in steps] == ["load", "initialise", "register", "check", "save"]
    assert states(WorkflowFacts()) == dict(
        load=CURRENT, initialise=TODO, register=TODO, check=TODO, save=TODO
    )
    assert "a volume and an X-ray" in steps[0].detail
    only_ct = workflow_steps(WorkflowFacts(volume="ct"))[0]
    assert only_ct.state == CURRENT and "an X-ray" in only_ct.detail and "a volume" not in only_ct.detail


def test_each_step_done_moves_the_current_one_on():
    facts = WorkflowFacts(volume="ct", xray="xr")
    assert states(facts)["initialise"] == CURRENT
    facts = WorkflowFacts(volume="ct", xray="xr", start="DICOM header")
    assert states(facts) == dict(load=DONE, initialise=DONE, register=CURRENT, check=TODO, save=TODO)
    facts = WorkflowFacts(volume="ct", xray="xr", start="DICOM header", registered=True, verdict="ok")
    assert states(facts) == dict(load=DONE, initialise=DONE, register=DONE, check=DONE, save=CURRENT)
    saved = WorkflowFacts(**{**facts.__dict__, "saved": "out/xr"})
    assert set(states(saved).values()) == {DONE}
    assert workflow_steps(saved)[-1].detail == "saved to out/xr"


def test_a_result_that_is_not_ok_is_a_warning_that_says_why():
    facts = WorkflowFacts(
        volume="ct",
        xray="xr",
        start="header",
        registered=True,
        verdict="failed",
        verdict_detail="scales disagree",
    )
    check = workflow_steps(facts)[3]
    assert check.state == WARNING and check.detail == "FAILED: scales disagree"
    assert check.text.startswith("\u26a0 Check")
    assert states(facts)["save"] == TODO  # the warning is where the user is


def test_the_start_is_the_register_docks_choice_else_the_drr_docks_pose():
    from napari_xvr.workflow import start_of

    default = "the DRR widget's pose"
    assert start_of(None, default, default) is None  # nothing set yet
    assert start_of("landmarks", default, default) == "the DRR widget's pose (landmarks)"
    assert start_of("landmarks", "model checkpoint", default) == "model checkpoint"  # chosen
    assert start_of(None, None, None) is None  # no Register dock open

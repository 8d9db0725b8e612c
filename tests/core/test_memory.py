"""napari_xvr.memory on this machine: what it can spare, the budget and its cap, the refusal."""

from __future__ import annotations

import os

import pytest
import torch

from napari_xvr import memory
from napari_xvr.errors import XvrInputError

PHYSICAL = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_available_memory_is_positive_and_at_most_physical():
    assert 0 < memory.available_memory() <= PHYSICAL


def test_budget_is_a_share_of_what_is_available(monkeypatch):
    monkeypatch.delenv(memory.MAX_MEMORY_ENV, raising=False)
    budget = memory.memory_budget()
    assert 0 < budget <= memory.available_memory() * memory.MEMORY_SHARE * 1.05


@pytest.mark.parametrize(("cap", "expected"), [("0.5", 1 << 29), ("0.001", int(0.001 * (1 << 30)))])
def test_the_environment_caps_the_budget(monkeypatch, cap, expected):
    monkeypatch.setenv(memory.MAX_MEMORY_ENV, cap)
    assert memory.memory_budget() == min(expected, int(memory.available_memory() * memory.MEMORY_SHARE))


def test_a_bad_cap_is_ignored(monkeypatch):
    monkeypatch.setenv(memory.MAX_MEMORY_ENV, "lots")
    assert memory.memory_budget() > 1 << 20


def test_check_memory_refuses_with_what_and_fix(monkeypatch):
    monkeypatch.setenv(memory.MAX_MEMORY_ENV, "0.01")
    memory.check_memory(1 << 20, "a small render", "never shown")
    with pytest.raises(
        XvrInputError,
        match=r"^a huge render would need about 2\.0 GiB of memory, "
        r"more than the \d+ MiB this machine can spare; shrink it$",
    ):
        memory.check_memory(2 << 30, "a huge render", "shrink it")


def test_device_memory_of_the_cpu_is_the_physical_memory():
    assert memory.device_memory(torch.device("cpu")) == PHYSICAL


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_device_memory_of_a_gpu():
    device = torch.device("cuda", 0)
    assert memory.device_memory(device) == torch.cuda.get_device_properties(device).total_memory


def test_render_bytes_and_gib():
    assert memory.render_bytes(10, 20) == 200 * memory.RENDER_BYTES_PER_PX["trilinear"]
    assert memory.render_bytes(10, 20, "fast") == 200 * memory.RENDER_BYTES_PER_PX["fast"]
    planes = 128 + 128 + 67 + 3
    assert memory.render_bytes(4, 4, "siddon", (128, 128, 67)) == 16 * memory.SIDDON_BYTES_PER_PLANE * planes
    assert memory.gib(3 << 30) == "3.0 GiB" and memory.gib(40 << 20) == "40 MiB"

"""Realistic X-rays, independent of the renderer registration uses: a ray-driven projector of
its own, a tube spectrum through HU-derived materials, scatter, noise, detector and vendor
processing, collimators, annotations, tables and devices (:func:`.xray.simulate_xray`), and the
anatomies and cases of ``python -m benchmarks.realistic`` (:mod:`.anatomy`, :mod:`.cases`)."""

ANATOMIES = ("chest", "abdomen", "head", "skull")
"""The anatomies of the realistic benchmark (:func:`.anatomy.prepare`); here so that the CLI can
offer them without importing the simulator."""

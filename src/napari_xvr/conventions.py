"""Names and limits shared by the pose code, the options and the CLI (no torch: `xvr --help`
imports only this)."""

PARAMETERIZATIONS = (
    "euler_angles",
    "axis_angle",
    "quaternion",
    "quaternion_adjugate",
    "rotation_6d",
    "rotation_9d",
    "rotation_10d",
    "se3_log_map",
)
#: Euler-angle orders (three axes, the middle one differing from both outer ones), as xvr's CLI
CONVENTIONS = ("XYX", "XYZ", "XZX", "XZY", "YXY", "YXZ", "YZX", "YZY", "ZXY", "ZXZ", "ZYX", "ZYZ")

#: how DiffDRR's ``read`` orients a volume's frame (its ``orientation``)
ORIENTATIONS = ("AP", "PA")

#: DRR renderers: DiffDRR's two, and napari-xvr's own (its images within 1e-3 of trilinear)
RENDERERS = ("fast", "trilinear", "siddon")

#: the largest detector side accepted from any file (a 16384^2 float32 image is 1 GiB)
MAX_DETECTOR_PX = 16384

#: One line per metric, as shown beside the numbers (napari) and in ``xvr evaluate --help``.
METRIC_DEFINITIONS = {
    "mTRE": "mean 3D distance between the fiducials moved by the estimated and by the true pose",
    "mPE": "mean distance on the detector between the fiducials' projections (pixels x delx)",
    "mRPE": "mean distance between the projections back-projected onto the detector in 3D",
    "geodesic": "DiffDRR's double geodesic on SE(3): rotation angle x sdd/2 and translation, combined",
}

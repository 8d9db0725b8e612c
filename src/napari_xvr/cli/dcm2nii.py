"""`xvr dcm2nii` (placeholder until its module lands)."""

COMMANDS = []

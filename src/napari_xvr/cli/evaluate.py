"""`xvr evaluate` (placeholder until its module lands)."""

COMMANDS = []

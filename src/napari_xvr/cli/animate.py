"""`xvr animate` (placeholder until its module lands)."""

COMMANDS = []

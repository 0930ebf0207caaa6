"""``journey demo``: the main job on the embedded stack, end to end, in under two minutes."""

DEMO_LOG = "demo.log"
"""Under the demo's home: the log lines of the demo and its workers (the terminal shows
progress)."""

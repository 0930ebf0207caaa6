"""``journey demo``: the main job on the embedded stack, end to end, in under two minutes."""

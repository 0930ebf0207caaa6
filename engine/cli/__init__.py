"""The ``journey`` command line: a composition root (reads settings, wires clients)."""

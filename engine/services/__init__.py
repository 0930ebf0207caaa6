"""The service layer: the engine's use cases (deploy, enroll, route events, report, explain,
schedule and evaluate segments), each a module the composition roots (CLI, API, worker, demo) call.

Services sit above the store, the caps, the workflow messages and Temporal's client, and below the
composition roots: they never read settings or open connections themselves; callers pass them in.
"""

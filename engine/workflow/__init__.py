"""The durable journey runtime: one `JourneyWorkflow` per (journey, profile).

Deterministic by construction: time from `workflow.now()`, randomness from hashing, no I/O; every
side effect happens in an activity (`engine.activities`) keyed by an idempotency key made here.
"""

"""Activities: the I/O of a journey run (store, caps, templates, connectors).

Errors at this edge: a connector's `RetryableSendError` and an unreachable cap store become a
retryable `ApplicationError` (Temporal retries with backoff); a `PermanentSendError` is recorded
as a failed delivery and returned, so the journey takes its ``on_failure`` path.
"""

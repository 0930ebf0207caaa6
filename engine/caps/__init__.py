"""The anti-harassment gate every marketing send passes: frequency caps and quiet hours.

`CapChecker` is the port the send activity calls; `AllowAll` is the only implementation until the
Redis cap service lands, and it allows every send (the README says so).
"""

"""Analytics: what a journey did and what it was worth, read from the store.

`model` holds the report's numbers as plain frozen records; the modules beside it compute them
(facts, attribution, experiments, kpis, fatigue, channel effect) and render them (text, HTML).
The store answers the queries; the CLI and API only call in here.
"""

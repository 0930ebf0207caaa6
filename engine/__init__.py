"""Journey Engine: marketing-automation journeys as durable Temporal workflows."""

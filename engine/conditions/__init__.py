"""Evaluating the condition language (`engine.dsl.conditions`) against profiles."""

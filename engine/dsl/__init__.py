"""The journey language: pydantic models, YAML loading with located errors, graph checks.

Errors: every problem found in a document is a `Problem` (file, line, column, path, message);
`DslError` carries all of them at once and is the only exception this package raises for bad input.
"""

"""The standard conformance scenarios; `session.STANDARD_SCENARIOS` lists them."""

"""Elspeth plugins that talk to JSON REST APIs over plain HTTP: the `http_enrich` transform."""

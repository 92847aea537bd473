"""Sample plugins for the kit's own pytester tests, installed into a pytester directory as package
`elspeth_samples` with one dist-info per plugin module (see `tests/testkit/conformance_runs.py`).

One correct plugin per kind (`jsonl_source`, `http_transform`, `batch_sum`, `append_sink`, and
`webhook_sink`, a sink with calls), and beside each the deliberately buggy variants, one module per bug,
each a small subclass of the correct plugin with the bug class and the bug in its docstring. `setups`
holds the `PluginSetup`s their written conftest.py files use; `http_client` the one HTTP client they share.
"""

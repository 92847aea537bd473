"""Elspeth's conformance kit: a pytest plugin (`pytest --elspeth-conformance`) that proves installed plugins
keep the audit promise, plus the pieces it is built from (the Landscape sweep, the fault proxy, the wire
check). Importing this package is cheap: only the setup classes come with it."""

from elspeth_testkit.setups import Options, PluginSetup, Service, local_file_setup

__all__ = ["Options", "PluginSetup", "Service", "local_file_setup"]

"""Configuration of the conformance run over every plugin this repository ships.

The built-in plugins need nothing here: their setups are the defaults of the kit's
`elspeth_conformance_setups` fixture. Plugins that talk to a service add their setup below.
"""

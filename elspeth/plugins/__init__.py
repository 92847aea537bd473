"""The built-in plugins. They are registered through the same `elspeth.plugins` entry point and hooks as
anybody else's (see `builtin.py`)."""

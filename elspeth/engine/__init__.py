"""The engine: runs a pipeline of plugins and records everything it does in the Landscape."""

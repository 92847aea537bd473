"""The Landscape: the audit database and the recorder the engine writes it through."""

"""Amazon S3 for Elspeth: the `s3` source and sink (entry point `elspeth.plugins` -> `elspeth_s3.plugin`)."""

__version__ = "0.1.0"
USER_AGENT = f"elspeth-s3/{__version__}"

"""The engine: runs a pipeline of plugins and records everything it does in the Landscape.

Its entry points for tools: the conformance kit runs and resumes pipelines through these alone."""

from elspeth.engine.orchestrator import resume_run, run_pipeline
from elspeth.engine.summary import RunSummary

__all__ = ["RunSummary", "resume_run", "run_pipeline"]

"""`python child_run.py SPEC.json`: elspeth_testkit.child with the Azure OpenAI plugins registered as these
tests register them, for the tests that SIGKILL a run part-way."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from elspeth_testkit.child import main
from tests.azure_openai.plugins import azure_openai_registry

if __name__ == "__main__":
    sys.exit(main(sys.argv[1], azure_openai_registry()))

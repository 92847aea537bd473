"""`python blob_child.py SPEC.json`: elspeth_testkit.child with the Blob plugins registered as these tests
register them, SIGKILLing itself at the spec's kill point."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from blob_world import blob_registry  # beside this file

from elspeth_testkit.child import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1], blob_registry()))

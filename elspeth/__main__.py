"""`python -m elspeth`: the `elspeth` command, run by this very Python (what `elspeth install` uses to
list plugins in a fresh interpreter)."""

from elspeth.cli import main

if __name__ == "__main__":
    main(prog_name="elspeth")

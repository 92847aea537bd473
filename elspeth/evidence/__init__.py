"""Evidence about past runs: the reproducibility grade, the signed export and its check, and `verify`."""

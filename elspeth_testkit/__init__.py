"""Elspeth's testkit: the Landscape sweep (`elspeth_testkit.sweep`) that every scenario ends with, and the
conformance kit built on it."""

"""Shared setup for the audit store tests."""

from __future__ import annotations


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    config.addinivalue_line("markers", "slow: runs cquin on a generated dataset of thousands of patients (bounded)")

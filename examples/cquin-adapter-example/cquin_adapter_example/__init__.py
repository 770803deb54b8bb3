"""An example cquin adapter plugin: a pipe-delimited EPR event export (see README.md)."""

from cquin_adapter_example.plugin import EprEventAdapter

__all__ = ["EprEventAdapter"]

"""Renderers: turn library results into rich tables, JSON and CSV."""

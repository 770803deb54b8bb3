"""The canonical dataset: the tables every adapter fills, and the ledger of what was accepted or rejected."""

from cquin.dataset.builder import CanonicalDataset, DatasetBuilder, Vocabulary
from cquin.dataset.ledger import FileStats, Ledger
from cquin.dataset.tables import TABLE_NAMES, table, tables

__all__ = ["CanonicalDataset", "DatasetBuilder", "FileStats", "Ledger", "TABLE_NAMES", "Vocabulary", "table", "tables"]

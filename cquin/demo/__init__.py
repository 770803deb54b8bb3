"""A bundled synthetic demo dataset, and the generator that made it (:mod:`cquin.demo.generate`).

``DEMO_DIR`` is a canonical folder (all eight CSV files) for 2,000 synthetic
patients with NHS numbers in the 999 test range, including a few deliberately
bad rows so the rejection report has something to show.  Load it with
``cquin.loading.load_dataset(DEMO_DIR, vocabulary)``.
"""

from pathlib import Path

DEMO_DIR = Path(__file__).parent / "data"
DEMO_PATIENTS = 2000
DEMO_SEED = 2017

__all__ = ["DEMO_DIR", "DEMO_PATIENTS", "DEMO_SEED"]

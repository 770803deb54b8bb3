"""cquin: evaluate NHS England CQUIN indicators from patient-record exports, with an audit trail."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cquin")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"

__all__ = ["__version__"]

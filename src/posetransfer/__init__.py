"""posetransfer: person-specific neural video rendering and pose transfer as a Snakemake workflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("posetransfer")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0+unknown"

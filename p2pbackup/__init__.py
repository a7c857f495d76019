"""p2pbackup: a peer-to-peer backup mesh with no central server."""

__version__ = "0.1.0"

"""monitor: probes sites and platforms, opens incidents, halts work, pages people."""

__version__ = "0.1.0"

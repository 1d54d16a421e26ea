"""Benchmarks for monitor beside a raw aiohttp loop and blackbox_exporter. Run: python -m bench --help."""

"""Shipped dataset files (``*.npz``, ``checksums.json``); read them with ``eeopt.datasets``."""

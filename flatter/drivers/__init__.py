"""The drivers behind the ``flatter`` command line: one module per command (``scaling``, ``cstar``, ``demo``).

Imported on demand by ``flatter/_cli.py`` so that the command line starts without JAX.
"""

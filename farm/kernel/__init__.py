"""The kernel: settings, external names, the error tree, the domain and wire contracts.

Everything else in the farm builds on these; they import nothing of the farm.
"""

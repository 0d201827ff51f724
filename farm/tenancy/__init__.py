"""Tenancy: API keys, runtime keys, plans and credit metering. Used by the API (and the
worker's composition root, which charges minutes through it).
"""

"""Transports: real TCP (authenticated and encrypted) and an in-memory simulated network."""

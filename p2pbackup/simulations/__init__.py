"""Scenarios that run the real peer code on the simulated network and virtual clock."""

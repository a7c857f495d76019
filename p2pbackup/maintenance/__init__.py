"""Keeping shares alive with no owner online: audits, repair, rebalancing, leases."""

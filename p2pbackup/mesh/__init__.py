"""Membership of a private mesh: its id, invites, member certificates, expulsion."""

"""Kademlia: routing table, iterative lookups, signed mutable records with quorums."""

"""One Peer = one trio nursery: RPC server, DHT upkeep, control API."""

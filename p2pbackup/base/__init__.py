"""What every layer uses: CPU offload, durable file writes, ids and distances, defaults."""

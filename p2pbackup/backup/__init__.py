"""Walk files, chunk, dedup, build snapshot trees; restore; forget and prune."""

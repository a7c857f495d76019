"""Chunk, seal, pack and erasure-code data; sans-IO apart from reading the file being chunked."""

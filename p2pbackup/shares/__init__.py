"""Shares between peers: the messages, what a storage peer does with them, and the owner's side."""

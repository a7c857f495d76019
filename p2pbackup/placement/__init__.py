"""Which peers hold share i of a pack: the closest live peers by XOR distance."""

"""Identity keys, key derivation, AEAD and hashing."""

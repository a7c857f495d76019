"""Frames on the wire: a length prefix, then a CBOR map with a type and a request id."""

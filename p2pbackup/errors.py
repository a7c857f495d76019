"""Error types a user or a caller can act on.

Every error the CLI may show derives from `P2PBackupError`; its message is one
line that says what went wrong and, where possible, what to do about it.
"""


class P2PBackupError(Exception):
    """Base of every error the project raises on purpose."""


class WireError(P2PBackupError):
    """A frame or message from a peer is malformed, too large or of unknown type."""


class HandshakeError(P2PBackupError):
    """A peer could not prove its identity or spoke out of turn during the handshake."""


class PeerUnreachable(P2PBackupError):
    """A remote call could not be delivered or was not answered in time."""


class RemoteError(P2PBackupError):
    """A peer answered a request with an error."""


class RecordRejected(P2PBackupError):
    """A signed record is forged, unsigned, too large or older than the stored one."""


class QuorumNotReached(P2PBackupError):
    """Fewer peers than the quorum answered a record read or write."""


class NoPeerRunning(P2PBackupError):
    """No peer is serving the given home directory."""

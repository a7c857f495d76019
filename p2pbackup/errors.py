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


def os_error_line(exc: OSError) -> str:
    """An `OSError` as the user should read it: the path it concerns and the system's
    reason (`/x/y: permission denied`), never the exception's repr."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    reason = reason[:1].lower() + reason[1:]
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    named = " -> ".join(_decoded(p) for p in paths)
    return f"{named}: {reason}" if named else reason


def _decoded(path: object) -> str:
    if isinstance(path, bytes):
        return path.decode(errors="surrogateescape")
    return str(path)


def sole_error(exc: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups, or `exc` itself.

    trio wraps an error raised inside a nursery in a group, one level per
    nursery; a group of one says no more than the error it holds, and that
    error's own line is what the user must see."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc

"""Erasure coding of packs (zfec k-of-n) and Merkle trees over each share.

A pack becomes n equal shares, any k of which rebuild it, so the mesh can lose
n - k holders of a pack and still restore it. Each share is cut into fixed
blocks under a Merkle tree whose root the owner signs (see `descriptor`):
a holder can then prove it still has a share by answering for one random
block with its proof, without sending the whole share.

The tree follows RFC 6962 (split at the largest power of two below the
count, no duplicated nodes), with leaves and inner nodes hashed under
different keys so a node can never pass for a leaf. Two hashes are in use,
named by the descriptor's version (decision 0043): tree 1 hashes with BLAKE2b
under two personalisations, tree 2, for every pack made now, with BLAKE3
under two derived keys, seven times faster: every share is hashed by its
owner and again by its holder, so this hash was a third of a big backup's CPU.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping

import blake3
import zfec

from p2pbackup.base import defaults
from p2pbackup.codec import isal
from p2pbackup.errors import P2PBackupError

DEFAULT_K = defaults.SHARES_NEEDED
DEFAULT_N = defaults.SHARES_TOTAL
MAX_N = 255
BLOCK_SIZE = 64 * 1024
HASH_BYTES = 32
_LEAF = b"p2pb:merkle-leaf"
_NODE = b"p2pb:merkle-node"
TREE_BLAKE2B = 1
TREE_BLAKE3 = 2
TREES = (TREE_BLAKE2B, TREE_BLAKE3)
LATEST_TREE = TREE_BLAKE3
_LEAF_KEY = blake3.blake3(
    b"leaf", derive_key_context="p2pbackup 2026-12 share merkle tree"
).digest()
_NODE_KEY = blake3.blake3(
    b"node", derive_key_context="p2pbackup 2026-12 share merkle tree"
).digest()


class ErasureError(P2PBackupError):
    """Shares cannot be encoded or decoded as asked (bad parameters or bad shares)."""


class NotEnoughShares(ErasureError):
    """Fewer than k usable shares were given, so the pack cannot be rebuilt."""


def check_params(k: int, n: int) -> None:
    if not 1 <= k <= n <= MAX_N:
        raise ErasureError(f"erasure parameters need 1 <= k <= n <= {MAX_N}, got k={k} n={n}")


def share_size(length: int, k: int) -> int:
    """Bytes in each share of a pack of `length` bytes (at least 1, so no share is empty)."""
    if length < 0:
        raise ErasureError("a pack length cannot be negative")
    return max(1, -(-length // k))


def encode_pack(data: bytes, k: int = DEFAULT_K, n: int = DEFAULT_N) -> list[bytes]:
    """The n shares of `data`: zero-padded to k equal parts, then Reed-Solomon coded
    (by ISA-L where the system has it, else by zfec: the same bytes either way).

    The caller records `len(data)` (the descriptor does) to strip the padding later.
    """
    check_params(k, n)
    size = share_size(len(data), k)
    # Only short parts are padded: padding the whole pack first copied it once more.
    view = memoryview(data)
    parts = [bytes(view[i * size : (i + 1) * size]) for i in range(k)]
    parts = [part + bytes(size - len(part)) if len(part) < size else part for part in parts]
    coded = isal.parity(parts, k, n)
    if coded is not None:
        return parts + coded
    return [bytes(share) for share in zfec.Encoder(k, n).encode(tuple(parts))]


def decode_pack(shares: Mapping[int, bytes], k: int, n: int, length: int) -> bytes:
    """Rebuild a pack of `length` bytes from any k of its shares (keyed by share index).

    Shares of the wrong size or out-of-range index are ignored; raises `NotEnoughShares`
    when fewer than k remain. Checking content is the caller's job (Merkle roots, pack id):
    a share of the right size but wrong bytes yields a wrong pack.
    """
    check_params(k, n)
    size = share_size(length, k)
    usable = sorted((i, share) for i, share in shares.items() if 0 <= i < n and len(share) == size)
    if len(usable) < k:
        raise NotEnoughShares(f"{len(usable)} usable shares, {k} needed to rebuild the pack")
    # Primary shares (index < k) first: fewer of them to recompute.
    chosen = usable[:k]
    indices = tuple(i for i, _ in chosen)
    blocks = tuple(share for _, share in chosen)
    parts = zfec.Decoder(k, n).decode(blocks, indices)
    return b"".join(parts)[:length]


# ---- Merkle tree over a share's blocks ---------------------------------


def block_count(size: int) -> int:
    """Blocks in a share of `size` bytes (an empty share still has one, empty block)."""
    return max(1, -(-size // BLOCK_SIZE))


def share_block(share: bytes, index: int) -> bytes:
    if not 0 <= index < block_count(len(share)):
        raise IndexError(f"block {index} outside a share of {len(share)} bytes")
    return share[index * BLOCK_SIZE : (index + 1) * BLOCK_SIZE]


# hashlib lets go of the interpreter lock for each update of 2,048 bytes or more,
# and a worker thread then waits to get it back while the peer's event loop runs:
# 22 such waits per share made a pack's ten roots take five times their CPU time.
# Fed in smaller pieces, a leaf is hashed without letting go.
_HELD_PIECE = 2047


def _leaf_blake2b(block: bytes | memoryview) -> bytes:
    leaf = hashlib.blake2b(digest_size=HASH_BYTES, person=_LEAF)
    view = memoryview(block)
    for start in range(0, len(view), _HELD_PIECE):
        leaf.update(view[start : start + _HELD_PIECE])
    return leaf.digest()


def _node_blake2b(left: bytes, right: bytes) -> bytes:
    return hashlib.blake2b(left + right, digest_size=HASH_BYTES, person=_NODE).digest()


# BLAKE3 keeps the interpreter lock for a block of 64 KiB (it lets go only for far
# larger inputs), so tree 2 needs no feeding in pieces.
def _leaf_blake3(block: bytes | memoryview) -> bytes:
    return blake3.blake3(block, key=_LEAF_KEY).digest()


def _node_blake3(left: bytes, right: bytes) -> bytes:
    node = blake3.blake3(left, key=_NODE_KEY)
    node.update(right)
    return node.digest()


_Hash = Callable[[bytes | memoryview], bytes]
_Join = Callable[[bytes, bytes], bytes]
_HASHES: dict[int, tuple[_Hash, _Join]] = {
    TREE_BLAKE2B: (_leaf_blake2b, _node_blake2b),
    TREE_BLAKE3: (_leaf_blake3, _node_blake3),
}


def _hashes(tree: int) -> tuple[_Hash, _Join]:
    try:
        return _HASHES[tree]
    except KeyError:
        raise ErasureError(f"unknown share tree {tree!r}; known: {TREES}") from None


def _split(count: int) -> int:
    """The largest power of two strictly below `count` (count >= 2)."""
    return 1 << ((count - 1).bit_length() - 1)


def _leaves(share: bytes | memoryview, leaf: _Hash) -> list[bytes]:
    view = memoryview(share)
    return [
        leaf(view[i * BLOCK_SIZE : (i + 1) * BLOCK_SIZE]) for i in range(block_count(len(share)))
    ]


def _root(leaves: list[bytes], node: _Join) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    mid = _split(len(leaves))
    return node(_root(leaves[:mid], node), _root(leaves[mid:], node))


def _path(index: int, leaves: list[bytes], node: _Join) -> list[bytes]:
    if len(leaves) == 1:
        return []
    mid = _split(len(leaves))
    if index < mid:
        return [*_path(index, leaves[:mid], node), _root(leaves[mid:], node)]
    return [*_path(index - mid, leaves[mid:], node), _root(leaves[:mid], node)]


def _root_and_path(index: int, leaves: list[bytes], node: _Join) -> tuple[bytes, list[bytes]]:
    """The root and leaf `index`'s path, each inner node hashed once (`_path` hashes
    the siblings, and `_root` the whole tree again)."""
    if len(leaves) == 1:
        return leaves[0], []
    mid = _split(len(leaves))
    left, right = leaves[:mid], leaves[mid:]
    if index < mid:
        below, path = _root_and_path(index, left, node)
        sibling = _root(right, node)
        return node(below, sibling), [*path, sibling]
    below, path = _root_and_path(index - mid, right, node)
    sibling = _root(left, node)
    return node(sibling, below), [*path, sibling]


def share_root(share: bytes, tree: int = LATEST_TREE) -> bytes:
    """The Merkle root of a share's blocks: what the owner signs for that share."""
    return leaves_root(share_leaves(share, tree), tree)


def block_proof(share: bytes, block_index: int, tree: int = LATEST_TREE) -> list[bytes]:
    """Sibling hashes from block `block_index` up to the root, leaf side first."""
    return leaves_proof(share_leaves(share, tree), block_index, tree)


def share_leaves(share: bytes | memoryview, tree: int = LATEST_TREE) -> list[bytes]:
    """The hash of each block of a share: the root and every proof follow from these
    alone, so whoever hashed a share once can prove any block of it without the rest."""
    return _leaves(share, _hashes(tree)[0])


def block_leaf(block: bytes | memoryview, tree: int = LATEST_TREE) -> bytes:
    """The leaf hash of one block, as `share_leaves` gives it."""
    return _hashes(tree)[0](block)


def leaves_root(leaves: list[bytes], tree: int = LATEST_TREE) -> bytes:
    """The Merkle root over a share's leaf hashes."""
    return _root(leaves, _hashes(tree)[1])


def leaves_proof(leaves: list[bytes], block_index: int, tree: int = LATEST_TREE) -> list[bytes]:
    """`block_proof` from the share's leaf hashes, without its bytes."""
    if not 0 <= block_index < len(leaves):
        raise IndexError(f"block {block_index} outside a share of {len(leaves)} blocks")
    return _path(block_index, leaves, _hashes(tree)[1])


def leaves_root_and_proof(
    leaves: list[bytes], block_index: int, tree: int = LATEST_TREE
) -> tuple[bytes, list[bytes]]:
    """`leaves_root` and `leaves_proof` at the cost of the root alone: a holder checking a
    share whose put asks for a proof needs both, and each alone hashes every inner node."""
    if not 0 <= block_index < len(leaves):
        raise IndexError(f"block {block_index} outside a share of {len(leaves)} blocks")
    return _root_and_path(block_index, leaves, _hashes(tree)[1])


def _root_from_path(
    index: int, count: int, below: bytes, proof: list[bytes], node: _Join
) -> bytes | None:
    if count == 1:
        return below if not proof else None
    if not proof:
        return None
    mid = _split(count)
    sibling, rest = proof[-1], proof[:-1]
    if index < mid:
        left = _root_from_path(index, mid, below, rest, node)
        return None if left is None else node(left, sibling)
    right = _root_from_path(index - mid, count - mid, below, rest, node)
    return None if right is None else node(sibling, right)


def verify_block(
    root: bytes,
    block_index: int,
    block: bytes,
    proof: list[bytes],
    block_count: int,
    tree: int = LATEST_TREE,
) -> bool:
    """True when `block` is block `block_index` of the share whose root is `root`.

    `block_count` comes from the signed share size, so the proof's shape is fixed
    and a proof for another position or tree size cannot pass. Never raises.
    """
    if not 0 <= block_index < block_count or len(block) > BLOCK_SIZE:
        return False
    if any(not isinstance(p, bytes) or len(p) != HASH_BYTES for p in proof):
        return False
    if tree not in _HASHES:
        return False
    leaf, node = _HASHES[tree]
    computed = _root_from_path(block_index, block_count, leaf(block), list(proof), node)
    return computed is not None and hmac.compare_digest(computed, root)

"""zfec k-of-n round trips and Merkle proofs over share blocks."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.codec.erasure import (
    BLOCK_SIZE,
    TREE_BLAKE2B,
    TREE_BLAKE3,
    ErasureError,
    NotEnoughShares,
    block_count,
    block_proof,
    decode_pack,
    encode_pack,
    share_block,
    share_root,
    share_size,
    verify_block,
)

PACK = random.Random(7).randbytes(200_000)
SHARES_3_10 = encode_pack(PACK, 3, 10)


def test_shares_have_equal_size() -> None:
    assert len(SHARES_3_10) == 10
    assert {len(s) for s in SHARES_3_10} == {share_size(len(PACK), 3)}


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 9), min_size=3, max_size=10))
def test_any_k_of_n_rebuild(subset: set[int]) -> None:
    shares = {i: SHARES_3_10[i] for i in subset}
    assert decode_pack(shares, 3, 10, len(PACK)) == PACK


def test_every_3_subset_rebuilds_a_small_pack() -> None:
    data = b"a small pack that is not a multiple of k"
    shares = encode_pack(data, 3, 6)
    for subset in itertools.combinations(range(6), 3):
        assert decode_pack({i: shares[i] for i in subset}, 3, 6, len(data)) == data


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=3000), st.integers(1, 12), st.integers(0, 12), st.data())
def test_round_trip_any_params(data: bytes, k: int, extra: int, draw: st.DataObject) -> None:
    n = k + extra
    shares = encode_pack(data, k, n)
    chosen = draw.draw(st.sets(st.integers(0, n - 1), min_size=k, max_size=k))
    assert decode_pack({i: shares[i] for i in chosen}, k, n, len(data)) == data


def test_fewer_than_k_fails_cleanly() -> None:
    with pytest.raises(NotEnoughShares, match="2 usable shares, 3 needed"):
        decode_pack({0: SHARES_3_10[0], 5: SHARES_3_10[5]}, 3, 10, len(PACK))


def test_wrong_size_and_out_of_range_shares_are_not_counted() -> None:
    shares = {0: SHARES_3_10[0], 1: SHARES_3_10[1][:-1], 42: SHARES_3_10[2]}
    with pytest.raises(NotEnoughShares):
        decode_pack(shares, 3, 10, len(PACK))


@pytest.mark.parametrize(("k", "n"), [(0, 3), (4, 3), (1, 256)])
def test_bad_parameters(k: int, n: int) -> None:
    with pytest.raises(ErasureError):
        encode_pack(b"x", k, n)


def test_empty_pack() -> None:
    shares = encode_pack(b"", 3, 5)
    assert all(len(s) == 1 for s in shares)
    assert decode_pack({1: shares[1], 3: shares[3], 4: shares[4]}, 3, 5, 0) == b""


# ---- Merkle -------------------------------------------------------------


@pytest.mark.parametrize("blocks", [1, 2, 3, 5, 8, 13])
def test_every_block_proof_verifies(blocks: int) -> None:
    share = random.Random(blocks).randbytes(BLOCK_SIZE * (blocks - 1) + 1234)
    assert block_count(len(share)) == blocks
    root = share_root(share)
    for i in range(blocks):
        proof = block_proof(share, i)
        assert verify_block(root, i, share_block(share, i), proof, blocks)


def test_flipped_block_or_wrong_position_fails() -> None:
    share = random.Random(1).randbytes(BLOCK_SIZE * 5)
    root = share_root(share)
    proof = block_proof(share, 2)
    block = bytearray(share_block(share, 2))
    assert verify_block(root, 2, bytes(block), proof, 5)
    block[100] ^= 0x01
    assert not verify_block(root, 2, bytes(block), proof, 5)
    assert not verify_block(root, 3, share_block(share, 2), proof, 5)
    # Another tree size gives another proof shape (5 and 6 blocks share it for block 2,
    # which is harmless: the verifier takes the count from the signed share size).
    assert not verify_block(root, 2, share_block(share, 2), proof, 3)
    assert not verify_block(root, 2, share_block(share, 2), proof, 9)
    assert not verify_block(root, 2, share_block(share, 2), proof[:-1], 5)
    assert not verify_block(root, 2, share_block(share, 2), [*proof, proof[0]], 5)
    assert not verify_block(root, 7, share_block(share, 2), proof, 5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.data())
def test_flipped_share_byte_changes_root(blocks: int, data: st.DataObject) -> None:
    share = bytearray(random.Random(blocks).randbytes(BLOCK_SIZE * blocks))
    root = share_root(bytes(share))
    position = data.draw(st.integers(0, len(share) - 1))
    share[position] ^= 0x80
    assert share_root(bytes(share)) != root
    index = position // BLOCK_SIZE
    original_proof = block_proof(bytes(share), index)  # siblings are unchanged
    assert not verify_block(root, index, share_block(bytes(share), index), original_proof, blocks)


def test_a_node_cannot_pass_as_a_leaf() -> None:
    """Domain separation: the two children of a 2-block root do not verify as a 1-block share."""
    share = random.Random(2).randbytes(2 * BLOCK_SIZE)
    root = share_root(share)
    left, right = block_proof(share, 1)[0], block_proof(share, 0)[0]
    assert not verify_block(root, 0, left + right, [], 1)


@given(st.binary(max_size=3 * 2047 + 5) | st.integers(0, BLOCK_SIZE).map(lambda n: bytes(n)))
@settings(max_examples=60)
def test_a_share_root_is_the_same_however_its_leaves_are_fed(share: bytes) -> None:
    """Roots are signed and stored: hashing a leaf in pieces must give the digest that
    hashing it at once gives, or every stored share would look corrupt."""
    leaf = hashlib.blake2b(share, digest_size=32, person=b"p2pb:merkle-leaf").digest()
    assert share_root(share, TREE_BLAKE2B) == leaf


@pytest.mark.parametrize("tree", [TREE_BLAKE2B, TREE_BLAKE3])
def test_each_tree_proves_its_own_blocks_and_not_the_others(tree: int) -> None:
    """Shares signed under BLAKE2b trees stay auditable after new packs moved to BLAKE3:
    a proof checks against the tree its descriptor names, and only that one."""
    share = SHARES_3_10[0] + SHARES_3_10[1]  # several blocks
    blocks = block_count(len(share))
    other = TREE_BLAKE3 if tree == TREE_BLAKE2B else TREE_BLAKE2B
    root = share_root(share, tree)
    assert root != share_root(share, other)
    for i in range(blocks):
        proof = block_proof(share, i, tree)
        assert verify_block(root, i, share_block(share, i), proof, blocks, tree)
        assert not verify_block(root, i, share_block(share, i), proof, blocks, other)


def test_an_unknown_tree_is_refused() -> None:
    share = SHARES_3_10[0]
    with pytest.raises(ErasureError, match="unknown share tree"):
        share_root(share, 3)
    root = share_root(share)
    assert not verify_block(root, 0, share_block(share, 0), block_proof(share, 0), 18, 3)


def test_new_shares_use_blake3_trees() -> None:
    """The tree of a single block is its keyed BLAKE3 leaf: the hash the descriptor's
    version 2 promises (a change here breaks every stored root)."""
    import blake3

    key = blake3.blake3(b"leaf", derive_key_context="p2pbackup 2026-12 share merkle tree")
    block = b"one block"
    assert share_root(block) == blake3.blake3(block, key=key.digest()).digest()

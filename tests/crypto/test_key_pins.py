"""Pinned key derivations: the recovery secret must give the same keys forever.

Nothing but the phrase or passphrase survives a lost disk, so every label,
BLAKE2b personalisation, salt and Argon2id limit on the way from it to the
keys is part of the on-disk format. These values were computed once; a test
here failing means existing backups could no longer be recovered.
"""

from __future__ import annotations

import json
import subprocess
import unicodedata
from pathlib import Path

import pytest
from nacl.pwhash import argon2id

from p2pbackup.cli.localmesh import CLI
from p2pbackup.crypto.identity import Identity, node_id_from_public_key
from p2pbackup.crypto.keys import (
    DEFAULT_MEMLIMIT,
    DEFAULT_OPSLIMIT,
    OWNER_PASSPHRASE_LABEL,
    OwnerKeys,
    passphrase_salt,
)

# The BIP39 English test vector for 32 bytes of 0x7f.
PHRASE = (
    "legal winner thank year wave sausage worth useful legal winner thank year "
    "wave sausage worth useful legal winner thank year wave sausage worth title"
)
PASSPHRASE = "correct horse battery staple"

PHRASE_KEYS = {
    "master": "ca1222f95408dfe848b9e375170e5ceab776b8f3b677c7d9708882c132d44069",
    "chunk_id_key": "0fc547c6e659f2ec7b0d7429a3f013f24c8135543a79675ca31115bcc295fe11",
    "data_key": "38227defb165e23af40afe66e1244e8d5e53dcc19b12381011d43abbbbf5e595",
    "snapshot_key": "587f3200b2413e9adf6a34174e3560e4646563db6f958058c342bf70a5bd4068",
    "signing_seed": "1bc6ee21f22e84e4054bb8db97bc6141c6ce153de166665d2906b2d159d9b4e5",
    "public_key": "d8f6852c061ba2e01154d18ebc1884e069dbc993dea0a6edb516d259acfc259e",
    "node_id": "9c0ab16ccef6cc16d0fdcd509c3bcf01bfcf919a",
}

# OwnerKeys.from_owner_passphrase(PASSPHRASE): the owner label and the default limits.
PASSPHRASE_KEYS = {
    "master": "8d5b7a5d152cc413f28ebe96355f0795fc78fb6554c4624d643d5263c4b510b6",
    "chunk_id_key": "6deb5f9d9d9a5f971b56a07b5d05f1d46d92775a07c999c02f6b4e7f0d58d8c8",
    "data_key": "bb1c94fe1d374e8d46aa7a41c6fa648ac60e521ce059c20656894c8feadfc05b",
    "snapshot_key": "196e9e0c140e4296778f99f6c4587444e5a4fd1ab1a4f3b02d0304cdcf3da5db",
    "signing_seed": "f3f2ca18facd8cb8e47d304d822ebbf1ec102af462182a55686a5b66d7c5b073",
    "public_key": "727b95e101dae05e25ab2ccfb76faf4cf397372ca40266796a7a5f79b62999bc",
    "node_id": "e22571d70615d93831118d2753f0c88672c535ab",
}

# The same passphrase and salt with the cheapest limits: pins the passphrase path apart
# from the limits, so a failure says which of the two moved.
CHEAP_PASSPHRASE_MASTER = "f218328b3e5e617cb7c4e3b45a2937af8e178a969d54e40c4d7e1fc356be6330"
OWNER_SALT = "2918d2013a680d4825ec78bdecc2d51c"
# A passphrase with accents, which keyboards and systems type composed or decomposed.
ACCENTED = "Grüße aus Zürich, café"
ACCENTED_CHEAP_MASTER = "fa6de521f68615707be875daf454adb1be7651e8a8e9a7ec7278c12806fffb60"


def _hex_keys(keys: OwnerKeys) -> dict[str, str]:
    return {
        "master": keys.master.hex(),
        "chunk_id_key": keys.chunk_id_key.hex(),
        "data_key": keys.data_key.hex(),
        "snapshot_key": keys.snapshot_key.hex(),
        "signing_seed": keys.identity.seed.hex(),
        "public_key": keys.identity.public_key.hex(),
        "node_id": keys.identity.node_id.hex(),
    }


def test_the_phrase_gives_the_pinned_keys() -> None:
    assert _hex_keys(OwnerKeys.from_phrase(PHRASE)) == PHRASE_KEYS


def test_the_owner_salt_label_and_default_limits_are_pinned() -> None:
    assert OWNER_PASSPHRASE_LABEL == "p2pbackup owner"
    assert passphrase_salt(OWNER_PASSPHRASE_LABEL).hex() == OWNER_SALT
    assert (DEFAULT_OPSLIMIT, DEFAULT_MEMLIMIT) == (3, 256 * 2**20)


@pytest.mark.parametrize(
    ("passphrase", "master"),
    [
        (PASSPHRASE, CHEAP_PASSPHRASE_MASTER),
        (unicodedata.normalize("NFC", ACCENTED), ACCENTED_CHEAP_MASTER),
        (unicodedata.normalize("NFD", ACCENTED), ACCENTED_CHEAP_MASTER),
    ],
)
def test_the_passphrase_path_is_pinned_apart_from_its_limits(passphrase: str, master: str) -> None:
    # An accented passphrase gives one key however it was typed, composed or not.
    keys = OwnerKeys.from_passphrase(
        passphrase,
        bytes.fromhex(OWNER_SALT),
        opslimit=argon2id.OPSLIMIT_MIN,
        memlimit=argon2id.MEMLIMIT_MIN,
    )
    assert keys.master.hex() == master


def test_the_owner_passphrase_gives_the_pinned_keys() -> None:
    assert _hex_keys(OwnerKeys.from_owner_passphrase(PASSPHRASE)) == PASSPHRASE_KEYS


def test_a_peer_identity_seed_gives_the_pinned_node_id() -> None:
    # A peer's node.key holds only the seed; its node id must not drift either.
    identity = Identity.from_seed(bytes(range(32)))
    public = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    assert identity.public_key.hex() == public
    assert identity.node_id.hex() == "f0a594d2978da8803f696325ea0aaa5045cf2e94"
    assert node_id_from_public_key(bytes.fromhex(public)) == identity.node_id


def _init(home: Path, *args: str, stdin: str | None = None) -> dict[str, object]:
    result = subprocess.run(
        [*CLI, "--home", str(home), "init", "--json", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize("how", ["recover", "passphrase"])
def test_init_keeps_the_pinned_owner_keys(tmp_path: Path, how: str) -> None:
    # `init` is where a recovery starts: it must take the pinned path, not a private one.
    home = tmp_path / "home"
    if how == "recover":
        expected = PHRASE_KEYS
        shown = _init(home, "--recover", stdin=PHRASE + "\n")
    else:
        expected = PASSPHRASE_KEYS
        secret = tmp_path / "passphrase.txt"
        secret.write_text(PASSPHRASE + "\n")
        shown = _init(home, "--passphrase-file", str(secret))
    assert shown["owner"] == expected["public_key"]
    assert (home / "owner.key").read_bytes().hex() == expected["master"]

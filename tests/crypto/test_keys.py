"""Owner keys: deterministic from the recovery secret, distinct per purpose, readable errors."""

from __future__ import annotations

import pytest
from nacl.pwhash import argon2id

from p2pbackup.crypto.identity import verify_signature
from p2pbackup.crypto.keys import (
    InvalidRecoverySecret,
    OwnerKeys,
    new_recovery_phrase,
    passphrase_salt,
    validate_phrase,
)
from p2pbackup.errors import P2PBackupError

CHEAP = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}
# The BIP39 test vector for 32 zero bytes of entropy.
ZERO_PHRASE = " ".join(["abandon"] * 23 + ["art"])


def test_new_phrase_is_24_valid_words_and_fresh() -> None:
    phrase = new_recovery_phrase()
    assert len(phrase.split()) == 24
    assert validate_phrase(phrase) == phrase
    assert new_recovery_phrase() != phrase


def test_same_phrase_same_keys() -> None:
    a, b = OwnerKeys.from_phrase(ZERO_PHRASE), OwnerKeys.from_phrase(ZERO_PHRASE)
    assert a.chunk_id_key == b.chunk_id_key
    assert a.data_key == b.data_key
    assert a.snapshot_key == b.snapshot_key
    assert a.identity.public_key == b.identity.public_key


def test_phrase_is_normalised() -> None:
    messy = "  " + ZERO_PHRASE.upper().replace(" ", "\n  ") + " "
    assert OwnerKeys.from_phrase(messy).data_key == OwnerKeys.from_phrase(ZERO_PHRASE).data_key
    # BIP39 words are unique in their first four letters.
    short = " ".join(["aban"] * 23 + ["art"])
    assert validate_phrase(short) == ZERO_PHRASE


def test_subkeys_are_distinct_and_sized() -> None:
    keys = OwnerKeys.from_phrase(new_recovery_phrase())
    subkeys = [keys.master, keys.chunk_id_key, keys.data_key, keys.snapshot_key, keys.identity.seed]
    assert all(len(k) == 32 for k in subkeys)
    assert len(set(subkeys)) == len(subkeys)


def test_different_phrases_give_different_keys() -> None:
    a = OwnerKeys.from_phrase(new_recovery_phrase())
    b = OwnerKeys.from_phrase(new_recovery_phrase())
    assert a.data_key != b.data_key
    assert a.identity.public_key != b.identity.public_key


def test_owner_identity_signs() -> None:
    identity = OwnerKeys.from_phrase(ZERO_PHRASE).identity
    assert verify_signature(identity.public_key, b"m", identity.sign(b"m"))


def test_repr_leaks_no_secret() -> None:
    keys = OwnerKeys.from_phrase(ZERO_PHRASE)
    text = repr(keys)
    assert keys.data_key.hex() not in text and str(keys.data_key) not in text


@pytest.mark.parametrize(
    ("phrase", "reason"),
    [
        ("abandon " * 12, "has 24 words, this one has 12"),
        (" ".join(["abandon"] * 23 + ["notaword"]), r"word 24 \('notaword'\) is not in the BIP39"),
        (" ".join(["abandon"] * 24), "checksum"),
        ("", "this one has 0"),
    ],
)
def test_invalid_phrase_readable_reason(phrase: str, reason: str) -> None:
    with pytest.raises(InvalidRecoverySecret, match=reason) as info:
        OwnerKeys.from_phrase(phrase)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, P2PBackupError)


def test_passphrase_path_is_deterministic_with_cheap_limits() -> None:
    salt = passphrase_salt("alice")
    a = OwnerKeys.from_passphrase("correct horse battery staple", salt, **CHEAP)
    b = OwnerKeys.from_passphrase("correct horse battery staple", salt, **CHEAP)
    c = OwnerKeys.from_passphrase("correct horse battery staple", passphrase_salt("bob"), **CHEAP)
    d = OwnerKeys.from_passphrase("correct horse battery stapler", salt, **CHEAP)
    assert a.data_key == b.data_key
    assert len({a.data_key, c.data_key, d.data_key}) == 3
    assert a.data_key != OwnerKeys.from_phrase(ZERO_PHRASE).data_key


def test_passphrase_checks() -> None:
    with pytest.raises(InvalidRecoverySecret, match="at least 12 characters"):
        OwnerKeys.from_passphrase("short", passphrase_salt("x"), **CHEAP)
    with pytest.raises(InvalidRecoverySecret, match="salt"):
        OwnerKeys.from_passphrase("long enough passphrase", b"salt", **CHEAP)


def test_salt_from_label_is_stable() -> None:
    assert passphrase_salt("alice") == passphrase_salt("alice")
    assert len(passphrase_salt("alice")) == argon2id.SALTBYTES
    assert passphrase_salt("alice") != passphrase_salt("bob")

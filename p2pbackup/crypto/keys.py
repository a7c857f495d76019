"""Owner keys: everything an owner needs, derived from one recovery secret.

The recovery secret is either a 24-word BIP39 phrase (256 bits of entropy,
shown once at `init`) or a passphrase stretched with Argon2id. Either way it
yields a 32-byte master secret, and every working key is a keyed, personalised
BLAKE2b of that master: losing the disk loses nothing the phrase cannot give
back, and no subkey reveals another or the master.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, field
from functools import cache

from mnemonic import Mnemonic
from nacl.encoding import RawEncoder
from nacl.hash import blake2b
from nacl.pwhash import argon2id

from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import P2PBackupError

PHRASE_WORDS = 24
KEY_BYTES = 32
SALT_BYTES = argon2id.SALTBYTES
MIN_PASSPHRASE_CHARS = 12
DEFAULT_OPSLIMIT = argon2id.OPSLIMIT_MODERATE
DEFAULT_MEMLIMIT = argon2id.MEMLIMIT_MODERATE
# The salt label of every passphrase owner. Nothing stores the salt, so recovery on a new
# machine rebuilds it from this label: changing it strands every passphrase backup.
OWNER_PASSPHRASE_LABEL = "p2pbackup owner"

# BLAKE2b personalisations (at most 16 bytes): one per purpose, so keys never collide.
_PERSON_PHRASE = b"p2pb:phrase"
_PERSON_PASSPHRASE = b"p2pb:passphrase"
_PERSON_SALT = b"p2pb:salt"
_PERSON_CHUNK_ID = b"p2pb:chunk-id"
_PERSON_DATA = b"p2pb:data"
_PERSON_SNAPSHOT = b"p2pb:snapshot"
_PERSON_SIGNING = b"p2pb:owner-sign"
_PERSON_MEMBER = b"p2pb:member"


class InvalidRecoverySecret(P2PBackupError):
    """A recovery phrase or passphrase cannot be used; the message says why."""


@cache
def _bip39() -> Mnemonic:
    return Mnemonic("english")


def new_recovery_phrase() -> str:
    """A fresh 24-word BIP39 English phrase carrying 256 bits from the OS generator."""
    return _bip39().to_mnemonic(os.urandom(KEY_BYTES))


def _normalise(phrase: str) -> list[str]:
    return unicodedata.normalize("NFKD", phrase).lower().split()


def _resolve_word(word: str, wordlist: list[str], words: frozenset[str]) -> str | None:
    """The list word meant: exact, or a unique prefix of 4+ letters (BIP39 words are unique
    in their first four letters, and people often write down only those)."""
    if word in words:
        return word
    if len(word) < 4:
        return None
    matches = [w for w in wordlist if w.startswith(word)]
    return matches[0] if len(matches) == 1 else None


def validate_phrase(phrase: str) -> str:
    """Check a recovery phrase and return it in canonical form (full words, single spaces).

    Raises `InvalidRecoverySecret` with a one-line reason a user can act on.
    """
    mnemo = _bip39()
    given = _normalise(phrase)
    if len(given) != PHRASE_WORDS:
        raise InvalidRecoverySecret(
            f"a recovery phrase has {PHRASE_WORDS} words, this one has {len(given)}"
        )
    wordlist = mnemo.wordlist
    known = _wordset()
    resolved = []
    for position, word in enumerate(given, start=1):
        full = _resolve_word(word, wordlist, known)
        if full is None:
            raise InvalidRecoverySecret(
                f"word {position} ({word!r}) is not in the BIP39 English word list; "
                "check its spelling"
            )
        resolved.append(full)
    canonical = " ".join(resolved)
    if not mnemo.check(canonical):
        raise InvalidRecoverySecret(
            "the recovery phrase fails its checksum: a word is wrong or the order is mixed up"
        )
    return canonical


@cache
def _wordset() -> frozenset[str]:
    return frozenset(_bip39().wordlist)


def passphrase_salt(label: str) -> bytes:
    """A deterministic 16-byte Argon2id salt from a label the user remembers (e.g. an owner
    name), so a passphrase-only owner can recover on a new machine with nothing stored."""
    return blake2b(
        unicodedata.normalize("NFC", label).encode(),
        digest_size=SALT_BYTES,
        person=_PERSON_SALT,
        encoder=RawEncoder,
    )


def member_identity(master: bytes) -> Identity:
    """The owner's mesh member key: from the recovery secret, so a recovered owner is
    the same member of its mesh (and the founder gets its authority back)."""
    if len(master) != KEY_BYTES:
        raise InvalidRecoverySecret(f"a master secret is {KEY_BYTES} bytes, not {len(master)}")
    return Identity.from_seed(_subkey(master, _PERSON_MEMBER))


def _subkey(master: bytes, person: bytes) -> bytes:
    return blake2b(b"", digest_size=KEY_BYTES, key=master, person=person, encoder=RawEncoder)


@dataclass(frozen=True)
class OwnerKeys:
    """The owner's working keys. Secrets are left out of `repr` so logs cannot leak them.

    - `chunk_id_key`: keys the chunk-id hash, so equal files of two owners look unrelated.
    - `data_key`: XChaCha20-Poly1305 key for chunk, tree and index blobs.
    - `snapshot_key`: seals the owner's snapshot records before they enter the DHT.
    - `identity`: the owner's Ed25519 identity that signs share descriptors and snapshot
      records; it is not any peer's node identity.
    """

    master: bytes = field(repr=False)
    chunk_id_key: bytes = field(repr=False)
    data_key: bytes = field(repr=False)
    snapshot_key: bytes = field(repr=False)
    identity: Identity = field(repr=False)

    @classmethod
    def from_master(cls, master: bytes) -> OwnerKeys:
        """Derive every subkey from a 32-byte master secret."""
        if len(master) != KEY_BYTES:
            raise InvalidRecoverySecret(f"a master secret is {KEY_BYTES} bytes, not {len(master)}")
        return cls(
            master=master,
            chunk_id_key=_subkey(master, _PERSON_CHUNK_ID),
            data_key=_subkey(master, _PERSON_DATA),
            snapshot_key=_subkey(master, _PERSON_SNAPSHOT),
            identity=Identity.from_seed(_subkey(master, _PERSON_SIGNING)),
        )

    @classmethod
    def from_phrase(cls, phrase: str) -> OwnerKeys:
        """Keys from a recovery phrase; the same phrase always gives the same keys."""
        canonical = validate_phrase(phrase)
        entropy = bytes(_bip39().to_entropy(canonical))
        master = blake2b(entropy, digest_size=KEY_BYTES, person=_PERSON_PHRASE, encoder=RawEncoder)
        return cls.from_master(master)

    @classmethod
    def from_passphrase(
        cls,
        passphrase: str,
        salt: bytes,
        *,
        opslimit: int = DEFAULT_OPSLIMIT,
        memlimit: int = DEFAULT_MEMLIMIT,
    ) -> OwnerKeys:
        """Keys from a passphrase stretched with Argon2id (MODERATE limits by default;
        tests pass cheaper ones). The salt must be the same at recovery: see
        `passphrase_salt`."""
        normalised = unicodedata.normalize("NFC", passphrase)
        if len(normalised) < MIN_PASSPHRASE_CHARS:
            raise InvalidRecoverySecret(
                f"a passphrase needs at least {MIN_PASSPHRASE_CHARS} characters; "
                "a longer one, or a recovery phrase, protects the backups better"
            )
        if len(salt) != SALT_BYTES:
            raise InvalidRecoverySecret(f"an Argon2id salt is {SALT_BYTES} bytes, not {len(salt)}")
        stretched = argon2id.kdf(
            KEY_BYTES, normalised.encode(), salt, opslimit=opslimit, memlimit=memlimit
        )
        master = blake2b(
            stretched, digest_size=KEY_BYTES, person=_PERSON_PASSPHRASE, encoder=RawEncoder
        )
        return cls.from_master(master)

    @classmethod
    def from_owner_passphrase(cls, passphrase: str) -> OwnerKeys:
        """Keys from an owner's passphrase alone, as `init --passphrase-file` derives them:
        the salt comes from the fixed owner label and the limits are the defaults, so the
        same passphrase gives the same keys on any machine."""
        return cls.from_passphrase(passphrase, passphrase_salt(OWNER_PASSPHRASE_LABEL))

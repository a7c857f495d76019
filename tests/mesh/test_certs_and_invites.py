"""Certificates, revocations and invite codes: what verifies and what does not."""

from __future__ import annotations

import base64

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.crypto.identity import Identity
from p2pbackup.crypto.keys import OwnerKeys, member_identity, new_recovery_phrase
from p2pbackup.mesh.certs import Certificate, MembershipError, Revocation, parse_item
from p2pbackup.mesh.invites import PREFIX, Invite, InviteBook, decode_invite, new_secret
from tests.crypto.test_key_pins import PHRASE
from tests.mesh.support import NOW


def test_the_member_key_comes_back_with_the_phrase_and_is_no_other_key() -> None:
    phrase = new_recovery_phrase()
    keys = OwnerKeys.from_phrase(phrase)
    again = member_identity(OwnerKeys.from_phrase(phrase).master)
    assert again.public_key == member_identity(keys.master).public_key
    assert again.public_key != keys.identity.public_key


def test_the_member_key_of_a_pinned_phrase_never_drifts() -> None:
    # A recovered member (and a recovered founder: the mesh id) must derive this again.
    keys = OwnerKeys.from_phrase(PHRASE)
    pinned = "2328708e591d803046bff53f4a4b780a423a502e1a9a25b025e913032f66f514"
    assert member_identity(keys.master).public_key.hex() == pinned


def test_a_certificate_verifies_only_under_its_founder() -> None:
    founder, member = Identity.generate(), Identity.generate()
    cert = Certificate.issue(founder, member.public_key, "laptop", NOW)
    assert parse_item(cert.to_bytes()) == cert
    forged = Certificate.issue(Identity.generate(), member.public_key, "laptop", NOW)
    claimed = Certificate(founder.public_key, forged.member, forged.name, NOW, forged.sig)
    with pytest.raises(MembershipError, match="not signed by its mesh's founder"):
        parse_item(claimed.to_bytes())
    renamed = Certificate(founder.public_key, cert.member, "another", NOW, cert.sig)
    with pytest.raises(MembershipError):
        parse_item(renamed.to_bytes())


def test_the_founder_cannot_be_revoked() -> None:
    founder = Identity.generate()
    assert not Revocation.issue(founder, founder.public_key, NOW).verify()
    assert Revocation.issue(founder, Identity.generate().public_key, NOW).verify()


@given(st.binary(max_size=600))
def test_any_bytes_as_a_roll_item_raise_only_membership_errors(data: bytes) -> None:
    with pytest.raises(MembershipError):
        parse_item(data)


def _invite(founder: Identity, expires: int = NOW + 3600) -> Invite:
    return Invite(founder.public_key, ("127.0.0.1:4000",), new_secret(), expires)


def test_an_invite_code_is_one_line_that_decodes_to_itself() -> None:
    founder = Identity.generate()
    invite = _invite(founder)
    code = invite.encode(founder)
    assert code.startswith(PREFIX) and code.isascii() and "\n" not in code and " " not in code
    assert decode_invite(code) == invite
    assert decode_invite(f"  {code}\n") == invite


def test_a_tampered_or_unsigned_code_is_refused_with_its_reason() -> None:
    founder = Identity.generate()
    code = _invite(founder).encode(founder)
    raw = cbor2.loads(base64.b32decode(code[len(PREFIX) :].upper() + "=" * (-len(code[6:]) % 8)))
    body = cbor2.loads(raw["b"])
    body["addrs"] = ["203.0.113.9:4000"]  # send the newcomer elsewhere
    tampered = cbor2.dumps({"b": cbor2.dumps(body), "s": raw["s"]})
    text = PREFIX + base64.b32encode(tampered).decode().rstrip("=").lower()
    with pytest.raises(MembershipError, match="tampered"):
        decode_invite(text)
    unsigned = cbor2.dumps({"b": raw["b"], "s": bytes(64)})
    with pytest.raises(MembershipError, match="tampered"):
        decode_invite(PREFIX + base64.b32encode(unsigned).decode().rstrip("=").lower())
    with pytest.raises(MembershipError, match="not an invite code"):
        decode_invite("hello")
    with pytest.raises(MembershipError, match="damaged"):
        decode_invite(code[:-9])
    not_a_map = PREFIX + base64.b32encode(cbor2.dumps(5)).decode().rstrip("=").lower()
    with pytest.raises(MembershipError, match=r"^a damaged invite code: an invite code must be"):
        decode_invite(not_a_map)


@given(st.text(max_size=300))
def test_any_text_as_a_code_raises_only_membership_errors(text: str) -> None:
    with pytest.raises(MembershipError):
        decode_invite(PREFIX + text)


def test_the_book_spends_each_use_once_and_refuses_late_or_unknown_ones() -> None:
    founder = Identity.generate()
    book = InviteBook()
    twice = _invite(founder)
    book.add(twice, uses=2)
    book.spend(twice.invite_id, NOW)
    book.spend(twice.invite_id, NOW)
    with pytest.raises(MembershipError, match="already used"):
        book.spend(twice.invite_id, NOW)
    late = _invite(founder, expires=NOW - 1)
    book.add(late, uses=1)
    with pytest.raises(MembershipError, match="expired"):
        book.spend(late.invite_id, NOW)
    with pytest.raises(MembershipError, match="unknown"):
        book.spend(_invite(founder).invite_id, NOW)
    kept = InviteBook.from_wire(cbor2.loads(cbor2.dumps(book.to_wire())))
    with pytest.raises(MembershipError, match="already used"):
        kept.spend(twice.invite_id, NOW)


def test_a_proof_is_bound_to_its_transcript_and_its_secret() -> None:
    founder = Identity.generate()
    invite, other = _invite(founder), _invite(founder)
    book = InviteBook()
    book.add(invite, uses=1)
    proof = invite.proof(b"transcript one")
    assert book.proves(invite.invite_id, proof, b"transcript one")
    assert not book.proves(invite.invite_id, proof, b"transcript two")
    assert not book.proves(invite.invite_id, other.proof(b"transcript one"), b"transcript one")

"""Contract: store.org (docs/dev/interfaces.md, "Organisation configuration")."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import AlreadyExists, NotFound, ValidationError


async def test_first_domain_is_default_and_default_rules(store):
    a = await store.org.create_accepted_domain("Example", "Example.TEST")
    b = await store.org.create_accepted_domain("other", "*.other.test", "InternalRelay")
    assert a.is_default and not b.is_default
    assert a.domain_name == "example.test" and b.domain_type == "InternalRelay"
    assert [d.name for d in await store.org.list_accepted_domains()] == ["Example", "other"]
    assert (await store.org.get_accepted_domain("EXAMPLE.test")).id == a.id
    assert (await store.org.get_accepted_domain("OTHER")).id == b.id
    with pytest.raises(ValidationError):
        await store.org.delete_accepted_domain(a.id)
    b2 = await store.org.update_accepted_domain(b.id, make_default=True)
    assert b2.is_default
    assert not (await store.org.get_accepted_domain("example")).is_default
    await store.org.delete_accepted_domain(a.id)
    await store.org.delete_accepted_domain(b.id)  # the last one may go
    assert await store.org.list_accepted_domains() == []


async def test_domain_errors(store):
    await store.org.create_accepted_domain("example", "example.test")
    with pytest.raises(AlreadyExists):
        await store.org.create_accepted_domain("EXAMPLE", "x.test")
    with pytest.raises(AlreadyExists):
        await store.org.create_accepted_domain("again", "example.test")
    with pytest.raises(ValidationError):
        await store.org.create_accepted_domain("bad", "not a domain")
    with pytest.raises(ValidationError):
        await store.org.create_accepted_domain("bad", "x.test", "Whatever")
    with pytest.raises(NotFound):
        await store.org.get_accepted_domain("nope")
    with pytest.raises(NotFound):
        await store.org.update_accepted_domain(999, name="x")


async def test_concurrent_first_domains_one_default(store):
    await asyncio.gather(*(store.org.create_accepted_domain(f"d{i}", f"d{i}.test")
                           for i in range(8)))
    domains = await store.org.list_accepted_domains()
    assert sum(d.is_default for d in domains) == 1


async def test_mailbox_create_lookup_and_defaults(store):
    mb = await store.org.create_mailbox(
        name="alice", primary_smtp_address="Alice@EXAMPLE.test",
        email_addresses=["a.smith@example.test", "ALICE@example.test"])
    assert mb.primary_smtp_address == "Alice@example.test"
    assert mb.email_addresses == ("a.smith@example.test",)  # duplicate of primary dropped
    assert mb.user_principal_name == "Alice@example.test"
    assert mb.sam_account_name == "alice" and mb.display_name == "alice"
    assert mb.owa_enabled and mb.imap_enabled and mb.pop_enabled and not mb.ntlm_enabled
    assert mb.credential_version == 1 and mb.source == "local"
    for ident in ("ALICE", "alice@example.test", "A.Smith@Example.Test", str(mb.id)):
        assert (await store.org.get_mailbox(ident)).id == mb.id
    assert (await store.org.get_mailbox_by_id(mb.id)).name == "alice"
    assert (await store.org.find_mailbox_by_address("a.smith@EXAMPLE.test")).id == mb.id
    assert (await store.org.find_mailbox_for_login(account="ALICE")).id == mb.id
    assert (await store.org.find_mailbox_for_login(address="alice@example.test")).id == mb.id
    assert await store.org.find_mailbox_by_address("nobody@example.test") is None
    with pytest.raises(NotFound):
        await store.org.get_mailbox("bob")
    folders = await store.mail.list_folders(mb.id)
    assert {f.special_use for f in folders} == {"inbox", "drafts", "sent", "deleted", "junk",
                                                "outbox"}


async def test_upn_is_login_but_not_smtp(store):
    mb = await store.org.create_mailbox(name="bob", primary_smtp_address="bob@example.test",
                                        user_principal_name="bob@corp.test")
    assert (await store.org.find_mailbox_for_login(address="BOB@corp.test")).id == mb.id
    assert await store.org.find_mailbox_by_address("bob@corp.test") is None


async def test_addresses_unique_across_mailboxes(store):
    await store.org.create_mailbox(name="alice", primary_smtp_address="alice@example.test",
                                   email_addresses=["sales@example.test"])
    with pytest.raises(AlreadyExists, match=r"(?i)sales@example\.test"):
        await store.org.create_mailbox(name="bob", primary_smtp_address="SALES@example.test")
    with pytest.raises(AlreadyExists):
        await store.org.create_mailbox(name="bob", primary_smtp_address="bob@example.test",
                                       user_principal_name="alice@example.test")
    with pytest.raises(AlreadyExists):
        await store.org.create_mailbox(name="ALICE", primary_smtp_address="x@example.test")
    bob = await store.org.create_mailbox(name="bob", primary_smtp_address="bob@example.test")
    with pytest.raises(AlreadyExists):
        await store.org.update_mailbox(bob.id, email_addresses=["sales@example.test"])
    # nothing half-written by the failed attempts
    assert [m.name for m in await store.org.list_mailboxes()] == ["alice", "bob"]


async def test_concurrent_creates_same_address_one_wins(store):
    results = await asyncio.gather(
        *(store.org.create_mailbox(name=f"u{i}", primary_smtp_address="same@example.test")
          for i in range(6)), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if isinstance(r, Exception))


async def test_update_mailbox_and_credential_version(store):
    mb = await store.org.create_mailbox(name="alice", primary_smtp_address="alice@example.test",
                                        password_hash="$argon2id$v=19$x")
    v0 = await store.org.version()
    up = await store.org.update_mailbox(mb.id, imap_enabled=False, display_name="Alice S")
    assert not up.imap_enabled and up.display_name == "Alice S"
    assert up.credential_version == mb.credential_version
    assert await store.org.version() > v0
    up = await store.org.update_mailbox(mb.id, password_hash="$argon2id$v=19$y")
    assert up.credential_version == mb.credential_version + 1
    up = await store.org.update_mailbox(mb.id, ntlm_enabled=True, nt_hash=b"\x01" * 16)
    assert up.nt_hash == b"\x01" * 16 and up.credential_version == mb.credential_version + 2
    up = await store.org.update_mailbox(mb.id, ntlm_enabled=False)
    assert up.nt_hash is None  # not kept without NTLM
    up = await store.org.update_mailbox(mb.id, primary_smtp_address="alice2@example.test")
    assert await store.org.find_mailbox_by_address("alice@example.test") is None
    assert (await store.org.find_mailbox_by_address("alice2@example.test")).id == mb.id
    with pytest.raises(ValidationError):
        await store.org.update_mailbox(mb.id, id=5)
    with pytest.raises(ValidationError):
        await store.org.update_mailbox(mb.id, nt_hash=b"short")
    with pytest.raises(ValidationError):
        await store.org.create_mailbox(name="x", primary_smtp_address="x@example.test",
                                       nt_hash=b"\x00" * 16)  # NTLM not enabled
    with pytest.raises(ValidationError):
        await store.org.create_mailbox(name="y", primary_smtp_address="not-an-address")


async def test_delete_mailbox_removes_mail_and_content(store):
    from tests.contract.helpers import deliver, message

    a = await store.org.create_mailbox(name="a", primary_smtp_address="a@example.test")
    b = await store.org.create_mailbox(name="b", primary_smtp_address="b@example.test")
    await deliver(store, message(1), a.id, b.id)
    await deliver(store, message(2), a.id)
    await store.org.delete_mailbox(a.id)
    with pytest.raises(NotFound):
        await store.org.get_mailbox_by_id(a.id)
    assert await store.org.find_mailbox_by_address("a@example.test") is None
    contents = await store.engine.read(lambda tx: tx.all(
        "SELECT refcount FROM contents ORDER BY id"))
    assert contents == [(1,)]  # message 1 still held by b; message 2 gone
    with pytest.raises(NotFound):
        await store.org.delete_mailbox(a.id)


async def test_certificate_mappings(store):
    mb = await store.org.create_mailbox(name="alice", primary_smtp_address="alice@example.test")
    await store.org.add_certificate_mapping(mb.id, "thumbprint", "AB:CD:EF:01")
    await store.org.add_certificate_mapping(mb.id, "upn", "Alice@Corp.test")
    assert (await store.org.find_mailbox_by_certificate("thumbprint", "abcdef01")).id == mb.id
    assert (await store.org.find_mailbox_by_certificate("upn", "alice@corp.test")).id == mb.id
    assert await store.org.find_mailbox_by_certificate("rfc822", "alice@corp.test") is None
    other = await store.org.create_mailbox(name="bob", primary_smtp_address="bob@example.test")
    with pytest.raises(AlreadyExists):
        await store.org.add_certificate_mapping(other.id, "thumbprint", "abcdef01")
    with pytest.raises(ValidationError):
        await store.org.add_certificate_mapping(mb.id, "bogus", "x")
    await store.org.remove_certificate_mapping(mb.id, "thumbprint", "ABCDEF01")
    assert await store.org.find_mailbox_by_certificate("thumbprint", "abcdef01") is None
    with pytest.raises(NotFound):
        await store.org.remove_certificate_mapping(mb.id, "thumbprint", "ABCDEF01")


async def test_settings_merge_and_version(store):
    v0 = await store.org.version()
    assert await store.org.get_settings("imap") == {}
    await store.org.set_settings("organization", {"netbios_domain": "EXAMPLE", "name": "Ex"})
    await store.org.set_settings("organization", {"name": "Example Ltd"})
    assert await store.org.get_settings("organization") == {"netbios_domain": "EXAMPLE",
                                                            "name": "Example Ltd"}
    assert await store.org.version() == v0 + 2
    with pytest.raises(ValidationError):
        await store.org.set_settings("imap", {"x": object()})

"""The keyed audit chain: tampering of every kind is found, and only the key makes a chain verify.

Tampering is done the way an intruder with database access would do it: raw SQL on the
``audit_records`` and ``audit_head`` tables, not through cloudctl.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.services import audit, audit_keys, identity
from cloudctl.services import context as ctx_module
from cloudctl.store import audit as audit_store
from cloudctl.store import db, migrations, schema
from tests.conftest import make_context

AUDITOR = identity.local_operator("auditor")


def write(ctx: ctx_module.Context, count: int) -> None:
    for index in range(count):
        audit.record(
            ctx,
            principal=identity.local_operator(),
            action="test.write",
            target_type="Test",
            target_id=f"t{index}",
            outcome="success",
            detail={"index": index},
        )


def rows(ctx: ctx_module.Context) -> list[dict[str, object]]:
    with ctx.read() as tx:
        return [
            dict(r._mapping)
            for r in tx.execute(sa.select(schema.audit_records).order_by(schema.audit_records.c.seq))
        ]


def test_an_untouched_chain_verifies_and_names_its_key(ctx: ctx_module.Context) -> None:
    write(ctx, 3)
    result = audit.verify(ctx, principal=AUDITOR)
    assert result.ok, result.problem
    assert result.key_ids == [audit.signing_keys(ctx).current().id]
    first = rows(ctx)[0]
    assert first["key_id"] and first["source"].startswith("local@")


def test_an_edited_record_is_found(ctx: ctx_module.Context) -> None:
    write(ctx, 5)
    with ctx.transaction() as tx:
        tx.execute(
            schema.audit_records.update().where(schema.audit_records.c.seq == 3).values(actor="mallory")
        )
    result = audit.verify(ctx, principal=AUDITOR)
    assert (result.ok, result.first_bad_seq) == (False, 3)


def test_a_deleted_record_is_found(ctx: ctx_module.Context) -> None:
    write(ctx, 5)
    with ctx.transaction() as tx:
        tx.execute(schema.audit_records.delete().where(schema.audit_records.c.seq == 2))
    result = audit.verify(ctx, principal=AUDITOR)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 2, "record 2 is missing")


def test_reordered_records_are_found(ctx: ctx_module.Context) -> None:
    write(ctx, 4)
    with ctx.transaction() as tx:
        table = schema.audit_records
        tx.execute(table.update().where(table.c.seq == 2).values(seq=-2))
        tx.execute(table.update().where(table.c.seq == 3).values(seq=2))
        tx.execute(table.update().where(table.c.seq == -2).values(seq=3))
    result = audit.verify(ctx, principal=AUDITOR)
    assert (result.ok, result.first_bad_seq) == (False, 2)


def rehash_from(ctx: ctx_module.Context, seq: int, *, secret: bytes | None) -> None:
    """What an intruder does after an edit: recompute every hash from ``seq`` on, and the head.

    With ``secret=None`` the intruder uses the plain sha256 of the unkeyed format; otherwise an
    HMAC under a key of their own, claiming the real key id."""
    table = schema.audit_records
    with ctx.transaction() as tx:
        records = audit_store.list_records(tx)
        prev = records[seq - 2].hash if seq > 1 else audit_store.GENESIS
        for record in records[seq - 1 :]:
            fields = audit_store._fields(record)
            if secret is None:
                fields.pop("source", None)
                fields.pop("key_id", None)
                new = hashlib.sha256(
                    (
                        prev + json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                    ).encode()
                ).hexdigest()
                tx.execute(
                    table.update()
                    .where(table.c.seq == record.seq)
                    .values(prev_hash=prev, hash=new, key_id="")
                )
            else:
                new = audit_store.record_mac(secret, prev, fields)
                tx.execute(table.update().where(table.c.seq == record.seq).values(prev_hash=prev, hash=new))
            prev = new
        tx.execute(schema.audit_head.update().values(hash=prev))


def test_a_chain_re_hashed_without_the_key_is_found(ctx: ctx_module.Context) -> None:
    write(ctx, 6)
    with ctx.transaction() as tx:
        tx.execute(
            schema.audit_records.update().where(schema.audit_records.c.seq == 3).values(actor="mallory")
        )
    rehash_from(ctx, 3, secret=b"a key of the intruder's own, 32b")
    result = audit.verify(ctx, principal=AUDITOR)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "re-hashed without the key" in (result.problem or "")


def test_a_chain_re_hashed_in_the_old_unkeyed_format_is_found(ctx: ctx_module.Context) -> None:
    write(ctx, 4)
    with ctx.transaction() as tx:
        tx.execute(
            schema.audit_records.update().where(schema.audit_records.c.seq == 1).values(actor="mallory")
        )
    rehash_from(ctx, 1, secret=None)
    result = audit.verify(ctx, principal=AUDITOR)
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "without the audit key" in (result.problem or "")


def test_a_truncated_tail_is_found_by_the_checkpoint(
    ctx: ctx_module.Context, clock: clocks.ManualClock
) -> None:
    write(ctx, 5)
    written = audit.checkpoint(ctx)
    assert (written.written, written.seq) == (True, 5)
    clock.advance(1)
    write(ctx, 1)
    with ctx.transaction() as tx:  # drop records 4 to 6 and move the head back to record 3
        third = audit_store.record_at(tx, 3)
        assert third is not None
        tx.execute(schema.audit_records.delete().where(schema.audit_records.c.seq > 3))
        tx.execute(schema.audit_head.update().values(seq=3, hash=third.hash))
    result = audit.verify(ctx, principal=AUDITOR)
    assert not result.ok
    assert result.checkpoint_seq == 5
    assert "records were removed" in (result.problem or "")


def test_a_checkpoint_is_written_only_over_a_chain_that_verifies(ctx: ctx_module.Context) -> None:
    write(ctx, 3)
    with ctx.transaction() as tx:
        tx.execute(
            schema.audit_records.update().where(schema.audit_records.c.seq == 2).values(outcome="denied")
        )
    refused = audit.checkpoint(ctx)
    assert not refused.written
    assert audit_keys.read_checkpoints(ctx.settings.resolved_audit_checkpoint_file()) == []


def test_a_forged_checkpoint_line_is_found(ctx: ctx_module.Context) -> None:
    write(ctx, 2)
    path = ctx.settings.resolved_audit_checkpoint_file()
    forged = audit_keys.sign_checkpoint(
        audit_store.SigningKey("forged", b"x" * 32), seq=1, hash_="0" * 64, at=0
    )
    audit_keys.append_checkpoint(path, forged)
    result = audit.verify(ctx, principal=AUDITOR)
    assert not result.ok
    assert "not signed by a key of the audit key ring" in (result.problem or "")


def test_verify_needs_the_key_ring(ctx: ctx_module.Context, tmp_path: Path) -> None:
    write(ctx, 2)
    elsewhere = make_context(ctx.store, ctx.clock, tmp_path / "other-home")
    elsewhere.settings.audit_key_file = tmp_path / "no-such.key"
    with pytest.raises(errors.InvalidInput) as refused:
        audit.verify(elsewhere, principal=AUDITOR)
    assert refused.value.field == "audit_key_file"


def test_another_key_ring_does_not_verify_the_chain(ctx: ctx_module.Context, tmp_path: Path) -> None:
    write(ctx, 2)
    elsewhere = make_context(ctx.store, ctx.clock, tmp_path / "other-home")
    result = audit.verify(elsewhere, principal=AUDITOR)  # creates a key ring of its own
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "does not hold" in (result.problem or "")


def test_a_key_ring_others_can_read_is_refused(ctx: ctx_module.Context) -> None:
    write(ctx, 1)
    path = ctx.settings.resolved_audit_key_file()
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.chmod(path, 0o644)
    ctx.cache.clear()
    with pytest.raises(errors.InvalidInput) as refused:
        write(ctx, 1)
    assert refused.value.field == "audit_key_file"
    assert "chmod 600" in refused.value.reason


def test_a_rotated_key_signs_new_records_and_the_old_ones_still_verify(ctx: ctx_module.Context) -> None:
    write(ctx, 2)
    old = audit.signing_keys(ctx).current().id
    rotated = audit.rotate_key(ctx, principal=identity.local_operator("secadmin"))
    write(ctx, 2)
    assert rotated.key_id != old
    assert [r["key_id"] for r in rows(ctx)] == [old, old, rotated.key_id, rotated.key_id, rotated.key_id]
    result = audit.verify(ctx, principal=AUDITOR)
    assert result.ok, result.problem
    assert result.key_ids == [old, rotated.key_id]


def test_a_batch_moves_the_head_once_and_verifies(ctx: ctx_module.Context) -> None:
    items = [
        audit.entry(
            ctx,
            principal=identity.local_operator(),
            action="test.batch",
            target_type="Test",
            target_id=str(i),
            outcome="success",
        )
        for i in range(50)
    ]
    audit.append_entries(ctx, items)
    with ctx.read() as tx:
        assert audit_store.head(tx)[0] == 50
    assert audit.verify(ctx, principal=AUDITOR).ok


def test_records_are_bounded_whatever_a_caller_passes(ctx: ctx_module.Context) -> None:
    audit.record(
        ctx,
        principal=identity.local_operator(),
        action="test.big",
        target_type="Test",
        target_id="x" * 60_000,
        outcome="refused",
        detail={"blob": "y" * 60_000},
    )
    (record,) = rows(ctx)
    assert len(str(record["target_id"])) == audit.MAX_TARGET_ID
    assert len(json.dumps(record["detail"])) < audit.MAX_DETAIL_CHARS + 200
    assert audit.verify(ctx, principal=AUDITOR).ok


def test_a_chain_written_before_the_key_still_verifies_after_the_migration(tmp_path: Path) -> None:
    """Records of the unkeyed format (revision 0005) verify after 0006, are anchored by the
    first keyed record, and an edit among them is still found."""
    store = db.Store(db.sqlite_url(tmp_path))
    migrations.upgrade(store.engine, "0005")
    prev = audit_store.GENESIS
    with store.engine.begin() as tx:
        for seq in (1, 2, 3):
            fields = {
                "seq": seq,
                "at": 1.0,
                "actor": "local:root",
                "role": "sysadmin",
                "department": "",
                "action": "old.write",
                "target_type": "Test",
                "target_id": str(seq),
                "outcome": "success",
                "detail": {},
                "request_id": "r",
            }
            hashed = audit_store.record_hash(prev, fields)
            tx.execute(
                sa.text(
                    "INSERT INTO audit_records (seq, at, actor, role, department, action, target_type, "
                    "target_id, outcome, detail, request_id, prev_hash, hash) VALUES (:seq, :at, :actor, "
                    ":role, :department, :action, :target_type, :target_id, :outcome, '{}', :request_id, "
                    ":prev, :hash)"
                ),
                {**fields, "prev": prev, "hash": hashed},
            )
            prev = hashed
        tx.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 3, :hash)"), {"hash": prev})
    store.migrate()
    ctx = make_context(store, clocks.ManualClock(), tmp_path)
    from cloudctl.services import setup

    setup.initialise(ctx)
    write(ctx, 2)
    result = audit.verify(ctx, principal=AUDITOR)
    assert result.ok, result.problem
    assert [r["key_id"] == "" for r in rows(ctx)][:4] == [True, True, True, False]
    rehash_from(ctx, 2, secret=None)  # re-hash the old part and what follows, unkeyed
    assert not audit.verify(ctx, principal=AUDITOR).ok
    store.dispose()

"""The cluster's parts against a real PostgreSQL: migrations under a lock, membership
(heartbeats on the database clock, fencing when the database is gone), fleet notices."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from selfheal.cluster.membership import Membership
from selfheal.cluster.notify import FleetListener, announce
from selfheal.cluster.sqlite_lock import SqliteLock
from selfheal.errors import ConfigError
from selfheal.runtime.agent import Agent
from selfheal.storage.db import Database, alembic_config
from selfheal.types import DEFAULT_TENANT, ServiceKey
from tests.conftest import _create_postgres_database, _drop_postgres_database
from tests.helpers import TcpProxy, wait_for


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    name, url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(name)


async def test_replicas_migrating_at_once_do_not_race(postgres_url: str) -> None:
    dbs = [Database(postgres_url) for _ in range(4)]
    try:
        await asyncio.gather(*(db.migrate() for db in dbs))
        async with dbs[0].session() as session:
            version = await session.scalar(text("SELECT version_num FROM alembic_version"))
        assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
    finally:
        await asyncio.gather(*(db.close() for db in dbs))


async def test_members_see_each_other_and_a_dead_one_expires(postgres_url: str) -> None:
    db = Database(postgres_url)
    await db.migrate()
    views: dict[str, list[tuple[str, ...]]] = {"a": [], "b": []}
    a = Membership(db, on_view=lambda v: views["a"].append(tuple(v)), lease=1.0, beat=0.2)
    b = Membership(db, on_view=lambda v: views["b"].append(tuple(v)), lease=1.0, beat=0.2)
    try:
        await a.tick()
        await b.tick()
        await a.tick()
        assert a.view == b.view == tuple(sorted((a.id, b.id)))
        # b stops beating (as after SIGKILL): a sees it gone once the lease passed
        stopped = time.monotonic()

        async def b_gone() -> bool:
            await a.tick()
            return a.view == (a.id,)

        await wait_for(b_gone, 5, interval=0.1)
        assert time.monotonic() - stopped >= 0.9
        # leaving deletes the row: gone at once, no lease to wait out
        await b.tick()
        await a.tick()
        assert len(a.view) == 2
        await b.leave()
        await a.tick()
        assert a.view == (a.id,)
    finally:
        await db.close()


async def test_liveness_uses_the_database_clock(postgres_url: str) -> None:
    """A heartbeat row is stamped by PostgreSQL, whatever the replica's own clock says."""
    db = Database(postgres_url)
    await db.migrate()
    skewed = Membership(db, on_view=lambda v: None, clock=lambda: time.monotonic() + 86400)
    try:
        await skewed.tick()
        async with db.session() as session:
            drift = await session.scalar(
                text(
                    "SELECT extract(epoch FROM clock_timestamp() - heartbeat_at) "
                    "FROM cluster_members"
                )
            )
        assert 0 <= float(drift) < 1.0
    finally:
        await db.close()


async def test_a_replica_cut_off_fences_itself_before_the_others_take_over(
    postgres_url: str,
) -> None:
    await (seed := Database(postgres_url)).migrate()
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    cut_db = Database(postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
    views: list[tuple[tuple[str, ...], float]] = []
    lease = 1.5

    def on_view(view: object) -> None:
        views.append((tuple(view), time.monotonic()))  # type: ignore[arg-type]

    cut = Membership(cut_db, on_view=on_view, lease=lease, beat=0.3)
    other = Membership(seed, on_view=lambda v: None, lease=lease, beat=0.3)
    runner = None
    try:
        await other.tick()
        await cut.tick()
        await other.tick()
        assert len(cut.view) == 2
        runner = asyncio.create_task(cut.run())
        await asyncio.sleep(0.5)
        proxy.blackhole()
        blackholed = time.monotonic()

        async def other_sees_it_gone() -> bool:
            await other.tick()
            return other.view == (other.id,)

        await wait_for(other_sees_it_gone, 10, interval=0.02)
        gone_at = time.monotonic()
        assert cut.fenced
        view, fenced_at = views[-1]
        assert view == ()  # owns nothing: stops probing everything
        print(
            f"\nfenced {fenced_at - blackholed:.2f}s after the cut, "
            f"{gone_at - fenced_at:.2f}s before the other saw it gone"
        )
        # it stopped before anyone could take its services over
        assert fenced_at <= gone_at
        assert fenced_at - blackholed <= lease + 0.5  # 0.9 x lease after the last beat, + load
        # the database comes back: it rejoins with its next heartbeat
        proxy.heal()

        async def rejoined() -> bool:
            return not cut.fenced and len(cut.view) == 2

        await wait_for(rejoined, 10, interval=0.05)
    finally:
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        await proxy.cut()
        await cut_db.close()
        await seed.close()


async def test_a_lone_replica_keeps_working_through_an_outage(postgres_url: str) -> None:
    """One PostgreSQL replica stays what a single agent was: nobody can take over from it."""
    await (seed := Database(postgres_url)).migrate()
    await seed.close()
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    db = Database(postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
    views: list[tuple[str, ...]] = []
    alone = Membership(db, on_view=lambda v: views.append(tuple(v)), lease=1.0, beat=0.2)
    try:
        await alone.tick()
        await proxy.cut()
        for _ in range(8):
            await alone.tick()
            await asyncio.sleep(0.2)
        assert not alone.fenced
        assert alone.view == (alone.id,)
        assert views == []
    finally:
        await proxy.cut()
        await db.close()


async def test_a_change_announced_by_one_replica_reaches_another(postgres_url: str) -> None:
    db = Database(postgres_url)
    await db.migrate()
    refreshed: list[tuple[ServiceKey, float]] = []
    reconciled: list[float] = []

    async def refresh(key: ServiceKey) -> None:
        refreshed.append((key, time.monotonic()))

    async def reconcile() -> int:
        reconciled.append(time.monotonic())
        return 0

    listener = FleetListener(db, me="b", refresh=refresh, reconcile=reconcile)
    tasks = [asyncio.create_task(listener.listen()), asyncio.create_task(listener.apply())]
    try:
        await asyncio.wait_for(listener.connected.wait(), 5)
        key = ServiceKey("default", "api")
        sent = time.monotonic()
        await announce(db, key, origin="a")
        await announce(db, ServiceKey("default", "own"), origin="b")  # b's own: ignored

        async def arrived() -> bool:
            return bool(refreshed)

        await wait_for(arrived, 2, interval=0.01)
        assert refreshed[0][0] == key
        assert refreshed[0][1] - sent < 1.0
        await asyncio.sleep(0.2)
        assert [k for k, _ in refreshed] == [key]
        assert reconciled == []
        # the listening connection dies: what was sent meanwhile is caught by a reconcile
        async with db.session() as session:
            await session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )

        async def reconciled_after_reconnect() -> bool:
            return bool(reconciled) and listener.connected.is_set()

        await wait_for(reconciled_after_reconnect, 10, interval=0.05)
        await announce(db, key, origin="a")
        await wait_for(lambda: _true(len(refreshed) == 2), 2, interval=0.01)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await db.close()


def test_one_sqlite_file_one_lock_holder(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"
    first = SqliteLock(url)
    first.acquire()
    try:
        with pytest.raises(ConfigError, match="Use PostgreSQL for replicas"):
            SqliteLock(url).acquire()
    finally:
        first.release()
    again = SqliteLock(url)
    again.acquire()  # released: the next one gets it
    again.release()
    # in-memory databases have no file to share
    SqliteLock("sqlite+aiosqlite:///:memory:").acquire()


async def test_two_agents_split_the_fleet_and_reconcile_missed_changes(
    postgres_url: str, make_settings: Any
) -> None:
    """Two agents in one process on one database: disjoint shares, NOTIFY, and the
    reconcile that catches a change nobody announced."""
    a = Agent(make_settings(postgres_url))
    b = Agent(make_settings(postgres_url))
    await a.start()
    await b.start()
    try:

        async def both_see_two() -> bool:
            return len(a.cluster.membership.view) == len(b.cluster.membership.view) == 2

        await wait_for(both_see_two, 5, interval=0.05)
        for i in range(40):
            await a.fleet.upsert(
                tenant_id=DEFAULT_TENANT,
                service_id=f"s{i}",
                actor="test",
                health_url=f"http://127.0.0.1:9/s{i}",
                options={"interval": 30},
            )

        async def b_knows_all() -> bool:
            return len(b.fleet.specs()) == 40

        await wait_for(b_knows_all, 5, interval=0.05)
        keys = [ServiceKey(DEFAULT_TENANT, f"s{i}") for i in range(40)]
        mine_a = {k for k in keys if a.scheduler.owns(k)}
        mine_b = {k for k in keys if b.scheduler.owns(k)}
        assert mine_a.isdisjoint(mine_b)
        assert mine_a | mine_b == set(keys)
        assert a.scheduler.probing() + b.scheduler.probing() == 40

        # changed and deleted behind the agents' backs: no NOTIFY, the reconcile finds them
        async with a.db.session() as session:
            await session.execute(
                text(
                    "UPDATE services SET health_url = 'http://127.0.0.1:9/moved', "
                    "updated_at = clock_timestamp() WHERE service_id = 's1'"
                )
            )
            await session.execute(text("DELETE FROM services WHERE service_id = 's2'"))
        assert await b.fleet.reconcile() == 2
        moved = b.fleet.spec(ServiceKey(DEFAULT_TENANT, "s1"))
        assert moved is not None
        assert moved.health_url.endswith("/moved")
        assert b.fleet.spec(ServiceKey(DEFAULT_TENANT, "s2")) is None
        assert await b.fleet.reconcile() == 0

        # a stops: it leaves, and b owns everything at its next beat
        await a.stop()

        async def b_alone() -> bool:
            return b.scheduler.probing() == 39

        await wait_for(b_alone, 3, interval=0.05)
    finally:
        await a.stop()
        await b.stop()


async def _true(value: bool) -> bool:
    return value

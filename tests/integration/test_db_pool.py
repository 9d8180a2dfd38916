"""The PostgreSQL pool: a fixed number of connections, each without JIT (infrastructure/db/engine.py).

Under bench/soak.py's 30 clients the pool used to open 20 connections past its 10 and close
them again when handed back: ~40 backends on 2 cores, and every burst paid new backends with
empty prepared-statement caches. Requests past the pool's size now wait for a connection.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from infrastructure.db.engine import create_engine
from tests.conftest import postgres_database


async def test_many_concurrent_reads_share_the_pools_connections() -> None:
    async with postgres_database() as url:
        engine = create_engine(url, pool_size=2)
        try:

            async def backend() -> int:
                async with engine.connect() as connection:
                    # Each holds its connection a moment, so that the others must find one.
                    return (await connection.execute(text("SELECT pg_backend_pid() FROM pg_sleep(0.02)"))).scalar_one()

            pids = await asyncio.gather(*(backend() for _ in range(12)))
            assert len(pids) == 12  # every read answered, none refused
            assert len(set(pids)) <= 2  # on the pool's two connections, none opened past them
            async with engine.connect() as connection:
                assert (await connection.execute(text("SHOW jit"))).scalar_one() == "off"
        finally:
            await engine.dispose()

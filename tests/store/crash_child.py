"""Run by ``test_crash.py`` as a child process: open the embedded store in ``argv[1]``, write
``argv[2]`` alerts (firing the first), print ``ready``, then wait to be killed."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import trio
import trio_asyncio

from engine.config import DatabaseConfig
from engine.model import Direction, Fire, Tick
from engine.store import open_store


async def main(data_dir: Path, alerts: int) -> None:
    config = DatabaseConfig(url="", data_dir=data_dir)
    async with trio_asyncio.open_loop(), open_store(config) as store:
        owner = await store.create_user("crash", "crash@example.com", "h")
        made = [
            await store.create_alert(
                owner.id, "binance", "BTCUSDT", Decimal(f"{i + 1}.25"), Direction.BELOW, ""
            )
            for i in range(alerts)
        ]
        tick = Tick("binance", "BTCUSDT", Decimal("0.5"))
        await store.record_fires([Fire(tick, (made[0].trigger(),))], ["console"])
        print("ready", flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), int(sys.argv[2]))

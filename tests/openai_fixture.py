"""The OpenAI-compatible reference service on a free loopback port, for tests:
``async with running_openai(scenario) as (session, url, service)``."""

import contextlib

import aiohttp

from simrouter.live.openai_service import OpenAIService
from simrouter.live.service import start_service


@contextlib.asynccontextmanager
async def running_openai(s, seed=1):
    service = OpenAIService(s, seed=seed)
    runner, url = await start_service(service, "127.0.0.1", 0, shutdown_timeout=0.1)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            yield session, url, service
    finally:
        await runner.cleanup()

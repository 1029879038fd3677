"""genesis (asyncio, PyPI) against the fake switch, as its users drive it.

Run by test_compat_genesis.py in its own process: genesis needs a plain
asyncio loop, which the gevent-patched test process does not give.
``python genesis_client.py HOST PORT PASSWORD B_LEG JOB_UUID INBOUND_HANGUPS B_EVENTS``
prints one JSON line of results, waits for a line on stdin (the test then
drops every connection), and prints a second JSON line.  Every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import json
import sys

from genesis import Inbound
from genesis.exceptions import AuthenticationError, GenesisError

WAIT = 5.0
MYEVENTS = ("CHANNEL_ANSWER CHANNEL_APPLICATION CHANNEL_BRIDGE CHANNEL_CREATE CHANNEL_DATA "
            "CHANNEL_DESTROY CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP "
            "CHANNEL_HANGUP_COMPLETE CHANNEL_ORIGINATE CHANNEL_UUID CHANNEL_OUTGOING "
            "CHANNEL_PARK CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_STATE "
            "CHANNEL_UNBRIDGE CHANNEL_UNPARK").split()


def collector(into: list):
    async def handler(event) -> None:
        into.append({**{k: v for k, v in event.items()}, "_body": event.body or ""})
    return handler


async def until(predicate) -> bool:
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return False


def reply(event) -> str:
    return event.get("Reply-Text") or (event.body or "")


async def first_phase(host: str, port: int, password: str, b_leg: str, job_uuid: str,
                      inbound_hangups: int, b_events: int):
    out: dict = {}
    try:
        await Inbound(host, port, "wrong").start()
        out["bad_password"] = "accepted"
    except AuthenticationError:
        out["bad_password"] = "AuthenticationError"

    client, mine = Inbound(host, port, password), Inbound(host, port, password)
    await client.start()
    await mine.start()
    hangups, customs, jobs, session = [], [], [], []
    client.on("CHANNEL_HANGUP_COMPLETE", collector(hangups))
    client.on("fake::compat", collector(customs))  # genesis keys CUSTOM by subclass
    client.on("BACKGROUND_JOB", collector(jobs))
    for name in MYEVENTS:
        mine.on(name, collector(session))
    out["start"] = [reply(await client.send(c)) for c in (
        "event plain ALL", "nixevent HEARTBEAT", "noevents",
        "event plain CHANNEL_HANGUP_COMPLETE BACKGROUND_JOB CUSTOM fake::compat",
        "filter Call-Direction inbound")]
    out["myevents"] = reply(await mine.send("myevents " + b_leg))
    await until(lambda: len(hangups) >= inbound_hangups and len(session) >= b_events)
    out["hangups"] = hangups
    out["session_ids"] = sorted({e.get("Unique-ID") for e in session})
    out["session_count"] = len(session)

    await client.send("filter delete Call-Direction inbound")
    job = await client.send("bgapi status\nJob-UUID: " + job_uuid)
    out["bgapi_reply_job_uuid"] = job.get("Job-UUID")
    await until(lambda: jobs)
    out["job_event_uuid"] = jobs[0].get("Job-UUID") if jobs else None
    out["job_body_starts"] = jobs[0]["_body"][:3] if jobs else None

    sent = await mine.send("sendevent CUSTOM\nEvent-Subclass: fake::compat\nCompat-Header: yes")
    out["sendevent"] = reply(sent)
    await until(lambda: customs)
    out["custom"] = customs[0] if customs else None

    made = (await client.send("api originate sofia/internal/1000@127.0.0.1:5080 &park()")).body
    out["originate"] = made
    channel = await client.get_channel(made.split()[1])  # exists + plain uuid_dump
    out["channel"] = {"uuid": channel.uuid, "state": str(channel.state),
                      "name": channel.context.get("Channel-Name")}
    out["kill"] = (await client.send("api uuid_kill " + channel.uuid)).body
    out["exit"] = reply(await mine.send("exit"))
    out["mine_lost"] = await until(lambda: not mine.is_connected)
    await mine.stop()
    return client, out


async def second_phase(client) -> dict:
    """After the test dropped every connection: the client knows, nothing hangs."""
    lost = await until(lambda: not client.is_connected)
    try:
        await asyncio.wait_for(client.send("api status"), WAIT)
        after = "answered"
    except (GenesisError, OSError) as exc:
        after = type(exc).__name__
    except asyncio.TimeoutError:
        after = "hung"
    await client.stop()
    return {"noticed": lost, "send_after_drop": after}


async def main(argv: list[str]) -> None:
    host, port, password, b_leg, job_uuid, inbound, b_events = argv
    client, out = await asyncio.wait_for(
        first_phase(host, int(port), password, b_leg, job_uuid, int(inbound), int(b_events)),
        WAIT * 3)
    print(json.dumps(out), flush=True)
    await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline),
                           WAIT)
    print(json.dumps(await second_phase(client)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))

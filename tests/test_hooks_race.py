"""A hand edit that truncates hooks.yaml in place and writes it slowly, racing
API writes over real HTTP: the hand edit wins, whole, and no hook is ever
wiped meanwhile."""

from __future__ import annotations

import subprocess
import sys

import gevent
from gevent.event import Event
import pytest
import requests

from helpers import wait_until
from test_api_support import NEW_HOOK, PARENT, TOKENS, start_api

HOOKS = "/v2/accounts/%s/webhooks"
# truncate in place (as `cat >` and many editors do), then write in slow chunks
WRITER = """
import sys, time
path, source, chunk, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
data = open(source, "rb").read()
with open(path, "wb") as out:
    print("truncated", flush=True)
    for start in range(0, len(data), chunk):
        out.write(data[start:start + chunk])
        out.flush()
        if start + chunk < len(data):
            time.sleep(pause)
print("done", flush=True)
"""


def hand_text(count: int) -> str:
    entries = "".join(
        "  - id: %032x\n    account_id: %s\n    name: by hand %d\n"
        "    uri: http://127.0.0.1:9/hand/%d\n    hook: all\n\n" % (0xe0000 + n, PARENT, n, n)
        for n in range(count))
    return "# written by hand\nwebhooks:\n" + entries


@pytest.fixture
def api(tmp_path):
    api = start_api(tmp_path)
    api.store.start_watching(interval=0.05)
    yield api
    api.close()


def listed_names(session: requests.Session, api) -> list[str]:
    reply = session.get(api.url + HOOKS % PARENT + "?paginate=false", timeout=10,
                        headers={"X-Auth-Token": TOKENS["parent"]})
    assert reply.status_code == 200, reply.text
    return [h["name"] for h in reply.json()["data"]]


def test_a_hand_edit_truncating_in_place_wins_over_racing_api_writes(api, tmp_path):
    for n in range(20):
        api.create(name="api %d" % n)
    hand = hand_text(30).encode()
    source = tmp_path / "hand.yaml"
    source.write_bytes(hand)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(api.path), str(source),
                               "100", "0.015"], stdout=subprocess.PIPE, text=True)
    done = Event()
    replies: list[tuple[int, dict]] = []   # of creates sent while the edit was written
    listings: list[list[str]] = []

    def create_while_writing():
        with requests.Session() as session:
            for n in range(400):     # bounded; stops once the writer is done
                if done.is_set():
                    return
                reply = session.put(api.url + HOOKS % PARENT, timeout=10,
                                    headers={"X-Auth-Token": TOKENS["parent"]},
                                    json={"data": {**NEW_HOOK, "name": "racing %d" % n}})
                replies.append((reply.status_code, reply.json()["data"]))

    def list_while_writing():
        with requests.Session() as session:
            for _ in range(400):
                if done.is_set():
                    return
                listings.append(listed_names(session, api))
                gevent.sleep(0.005)

    try:
        assert writer.stdout.readline().strip() == "truncated"
        workers = [gevent.spawn(create_while_writing), gevent.spawn(list_while_writing)]
        assert writer.stdout.readline().strip() == "done"
        done.set()
        assert gevent.joinall(workers, timeout=20) and writer.wait(timeout=5) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(timeout=5)
    hand_names = ["by hand %d" % n for n in range(30)]
    statuses = [status for status, _ in replies]
    assert 409 in statuses and set(statuses) <= {201, 409}, statuses
    # a create may succeed only once the whole edit is read and in force: it is
    # then added after it; the file is the hand edit byte for byte, then those
    late = [data["name"] for status, data in replies if status == 201]
    assert wait_until(lambda: [h.name for h in api.store.hooks] == hand_names + late, timeout=5)
    text = api.path.read_bytes()
    assert text == hand if not late else text.startswith(hand)
    # never wiped, never half a file: each listing is all the API's hooks, or
    # the whole edit (then perhaps the creates applied to it)
    assert listings
    for names in listings:
        assert names[:30] == hand_names and names[30:] == late[:len(names) - 30] or (
            len(names) >= 20 and not any(n.startswith("by hand") for n in names)), names
    with requests.Session() as session:
        assert listed_names(session, api) == hand_names + late


def test_a_hand_edit_written_to_the_inode_an_api_write_replaced_is_put_back(api, tmp_path):
    for n in range(3):
        api.create(name="api %d" % n)
    hand = hand_text(4).encode()
    with open(api.path, "r+b") as editor:       # opened before eslhook's write...
        api.create(name="meanwhile")            # ...which renames a new file in place
        editor.truncate(0)                      # the editor's save lands on the old inode
        for start in range(0, len(hand), 100):
            editor.write(hand[start:start + 100])
            editor.flush()
            gevent.sleep(0.01)
    assert wait_until(lambda: api.path.read_bytes() == hand, timeout=5)
    assert wait_until(lambda: [h.name for h in api.store.hooks] ==
                      ["by hand %d" % n for n in range(4)], timeout=5)

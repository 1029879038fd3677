"""The ``api`` commands the fake switch answers, and its channel table.

Channels come from replayed events: a channel exists from its
CHANNEL_CREATE until its CHANNEL_HANGUP_COMPLETE (or CHANNEL_DESTROY), so
``show channels as json`` and ``uuid_exists`` reflect the replay.  Texts
follow FreeSWITCH 1.10 (see tests/captures/api-*.raw).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from eslhook.fakeswitch.events import EventData, render_plain

VERSION = ("FreeSWITCH Version 1.10.12-release+git~20240802T210227Z~a88d069d6f~64bit"
           " (git a88d069 2024-08-02 21:02:27Z 64bit)\n")
_READY = "FreeSWITCH (Version 1.10.12-release git a88d069 2024-08-02 21:02:27Z 64bit) is ready"
IDLE_CHANNELS_JSON = '{"row_count": 0}\n'  # FreeSWITCH's own idle text: space, no rows
_GONE_EVENTS = {"CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"}

# show channels columns, in FreeSWITCH's order, and the event header each comes from.
_COLUMNS = (
    ("uuid", "Unique-ID"), ("direction", "Call-Direction"), ("created", None),
    ("created_epoch", None), ("name", "Channel-Name"), ("state", "Channel-State"),
    ("cid_name", "Caller-Caller-ID-Name"), ("cid_num", "Caller-Caller-ID-Number"),
    ("ip_addr", "Caller-Network-Addr"), ("dest", "Caller-Destination-Number"),
    ("application", "variable_current_application"),
    ("application_data", "variable_current_application_data"),
    ("dialplan", "Caller-Dialplan"), ("context", "Caller-Context"),
    ("read_codec", "Channel-Read-Codec-Name"), ("read_rate", "Channel-Read-Codec-Rate"),
    ("read_bit_rate", "Channel-Read-Codec-Bit-Rate"),
    ("write_codec", "Channel-Write-Codec-Name"), ("write_rate", "Channel-Write-Codec-Rate"),
    ("write_bit_rate", "Channel-Write-Codec-Bit-Rate"), ("secure", None),
    ("hostname", "FreeSWITCH-Hostname"), ("presence_id", "Channel-Presence-ID"),
    ("presence_data", "Channel-Presence-Data"), ("accountcode", "variable_accountcode"),
    ("callstate", "Channel-Call-State"), ("callee_name", "Caller-Callee-ID-Name"),
    ("callee_num", "Caller-Callee-ID-Number"), ("callee_direction", None),
    ("call_uuid", "Channel-Call-UUID"), ("sent_callee_name", None), ("sent_callee_num", None),
)
_INITIAL = ("cid_name", "cid_num", "ip_addr", "dest", "dialplan", "context")
UUID_KILL_SYNTAX = "<uuid> [cause]"
UUID_DUMP_SYNTAX = "<uuid> [format]"
# show calls: a call's A-leg columns, then its B-leg's with a b_ prefix
# (tests/captures/api-show-calls-as-json.raw).
_CALL_COLUMNS = ("uuid", "direction", "created", "created_epoch", "name", "state",
                 "cid_name", "cid_num", "ip_addr", "dest", "presence_id", "presence_data",
                 "accountcode", "callstate", "callee_name", "callee_num", "callee_direction",
                 "call_uuid", "hostname", "sent_callee_name", "sent_callee_num")
_B_COLUMNS = tuple(c for c in _CALL_COLUMNS if c not in ("call_uuid", "hostname"))
# sofia status as the recording's switch answered (one profile, internal).
SOFIA_STATUS = (
    "                     Name\t   Type\t                                      Data\tState\n"
    + "=" * 97 + "\n"
    "                 internal\tprofile\t              sip:mod_sofia@127.0.0.1:5080\tRUNNING (0)\n"
    + "=" * 97 + "\n"
    "1 profile 0 aliases\n")


def _channel_row(headers: Mapping[str, str], previous: dict[str, str] | None) -> dict[str, str]:
    row = {col: headers.get(src, "") if src else "" for col, src in _COLUMNS}
    created_us = headers.get("Caller-Channel-Created-Time", "")
    row["created_epoch"] = str(int(created_us) // 1_000_000) if created_us.isdigit() else ""
    if previous is None:  # first sight: the initial_* columns freeze here
        row["created"] = headers.get("Event-Date-Local", "")
        row.update(("initial_" + col, row[col]) for col in _INITIAL)
    else:
        row["created"] = previous["created"]
        row.update(("initial_" + col, previous["initial_" + col]) for col in _INITIAL)
    return row


class ChannelTable:
    """Channels alive in the replay, in creation order.

    ``lag_reads``: like the real ``show channels``, which lags, a channel that
    is gone is still listed by that many more reads of the list.
    """

    def __init__(self, lag_reads: int = 0) -> None:
        self._rows: dict[str, dict[str, str]] = {}
        self._headers: dict[str, dict[str, str]] = {}   # last event of each channel
        self._lingering: dict[str, tuple[dict[str, str], int]] = {}
        self.lag_reads = lag_reads
        self.sessions_since_startup = 0
        self.peak = 0

    def observe(self, name: str, headers: Mapping[str, str], unique_id: str) -> None:
        if not unique_id:
            return
        if name in _GONE_EVENTS:
            row = self._rows.pop(unique_id, None)
            self._headers.pop(unique_id, None)
            if row is not None and self.lag_reads:
                self._lingering[unique_id] = (row, self.lag_reads)
            return
        known = self._rows.get(unique_id)
        if known is None and name != "CHANNEL_CREATE":
            return  # created before the replay started: unknown to us
        if known is None:
            self.sessions_since_startup += 1
        row = _channel_row(headers, known)
        row["uuid"] = unique_id
        self._rows[unique_id] = row
        self._headers[unique_id] = dict(headers)
        self.peak = max(self.peak, len(self._rows))

    def clear(self) -> None:
        self._rows.clear()
        self._headers.clear()
        self._lingering.clear()

    def snapshot(self, unique_id: str) -> dict[str, str] | None:
        """The live channel's headers, as its last event had them."""
        headers = self._headers.get(unique_id)
        return dict(headers) if headers is not None else None

    def dump_json(self, unique_id: str) -> str:
        """``uuid_dump <uuid> json``: the channel's headers as a CHANNEL_DATA event."""
        headers = self._headers.get(unique_id)
        if headers is None:
            return "-ERR No such channel!\n"
        return json.dumps({**headers, "Event-Name": "CHANNEL_DATA"}, ensure_ascii=False)

    def dump_plain(self, unique_id: str) -> str:
        """``uuid_dump <uuid>``: the same, serialised like a plain event."""
        headers = self._headers.get(unique_id)
        if headers is None:
            return "-ERR No such channel!\n"
        pairs = list({**headers, "Event-Name": "CHANNEL_DATA"}.items())
        return render_plain(EventData(pairs, None)).decode("ascii")

    def _call_rows(self) -> list[dict[str, str]]:
        """One row per call: A-legs with their bridged B-leg, lone channels alone."""
        rows = []
        for unique_id, row in self._rows.items():
            headers = self._headers[unique_id]
            if headers.get("Other-Type") == "originator":
                continue  # a B-leg: listed in its A-leg's row
            other = headers.get("Other-Leg-Unique-ID", "")
            b_row = self._rows.get(other) if headers.get("Other-Type") == "originatee" else None
            call = {col: row.get(col, "") for col in _CALL_COLUMNS}
            call["call_uuid"] = unique_id if b_row else ""
            call.update(("b_" + col, (b_row or {}).get(col, "")) for col in _B_COLUMNS)
            call["call_created_epoch"] = row.get("created_epoch", "") if b_row else ""
            rows.append(call)
        return rows

    def calls_as_json(self) -> str:
        return _rows_json(self._call_rows())

    def calls_as_text(self) -> str:
        rows = self._call_rows()
        names = list(_CALL_COLUMNS) + ["b_" + c for c in _B_COLUMNS] + ["call_created_epoch"]
        lines = [",".join(names)] + [",".join(row[n] for n in names) for row in rows]
        return "\n".join(lines) + "\n\n%d total.\n" % len(rows)

    def __contains__(self, unique_id: str) -> bool:
        return unique_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def _listed_rows(self) -> list[dict[str, str]]:
        rows = list(self._rows.values())
        for unique_id, (row, reads_left) in list(self._lingering.items()):
            rows.append(row)
            if reads_left <= 1:
                del self._lingering[unique_id]
            else:
                self._lingering[unique_id] = (row, reads_left - 1)
        return rows

    def as_json(self) -> str:
        return _rows_json(self._listed_rows())

    def as_text(self) -> str:
        names = [col for col, _ in _COLUMNS] + ["initial_" + c for c in _INITIAL]
        lines = [",".join(names)]
        lines += [",".join(row.get(n, "") for n in names) for row in self._rows.values()]
        return "\n".join(lines) + "\n\n%d total.\n" % len(self._rows)


def _rows_json(rows: list[dict[str, str]]) -> str:
    """``show ... as json``: FreeSWITCH's own idle text when there is no row."""
    if not rows:
        return IDLE_CHANNELS_JSON
    return json.dumps({"row_count": len(rows), "rows": rows},
                      ensure_ascii=False, separators=(",", ":"))


def _uptime(seconds: float) -> str:
    total_us = int(seconds * 1_000_000)
    secs, us = divmod(total_us, 1_000_000)
    mins, secs = divmod(secs, 60)
    hours, mins = divmod(mins, 60)
    days, hours = divmod(hours, 24)
    years, days = divmod(days, 365)
    return ("UP %d years, %d days, %d hours, %d minutes, %d seconds, %d milliseconds, "
            "%d microseconds" % (years, days, hours, mins, secs, us // 1000, us % 1000))


def status_text(started_monotonic: float, channels: ChannelTable) -> str:
    peak = channels.peak
    return "\n".join([
        _uptime(time.monotonic() - started_monotonic), _READY,
        "%d session(s) since startup" % channels.sessions_since_startup,
        "%d session(s) - peak %d, last 5min %d " % (len(channels), peak, peak),
        "0 session(s) per Sec out of max 200, peak 0, last 5min 0 ",
        "2000 session(s) max", "min idle cpu 0.00/100.00",
        "Current Stack Size/Max 240K/240K", ""])


def run_api(command: str, arg: str, channels: ChannelTable, started: float,
            hostname: str, core_uuid: str = "") -> str:
    """The text ``api <command> <arg>`` answers (as FreeSWITCH would)."""
    cmd = command.lower()
    if cmd == "status":
        return status_text(started, channels)
    if cmd == "version":
        return VERSION
    if cmd == "hostname":
        return hostname
    if cmd == "uuid_exists":
        return "true" if arg.strip() in channels else "false"
    if cmd == "uuid_dump":
        return _uuid_dump(arg, channels)
    if cmd == "global_getvar" and arg.strip() == "core_uuid":
        return core_uuid
    if cmd == "show":
        return _show(arg, channels)
    if cmd == "sofia" and arg.strip().lower() == "status":
        return SOFIA_STATUS
    return "-ERR %s Command not found!\n" % command


def _uuid_dump(arg: str, channels: ChannelTable) -> str:
    words = arg.split()
    if not words:
        return "-USAGE: %s\n" % UUID_DUMP_SYNTAX
    if len(words) > 1 and words[1].lower() == "json":
        return channels.dump_json(words[0])
    return channels.dump_plain(words[0])


def _show(arg: str, channels: ChannelTable) -> str:
    words = arg.lower().split()
    as_json = words[-2:] == ["as", "json"]
    if words[:1] == ["channels"]:
        return channels.as_json() if as_json else channels.as_text()
    if words[:1] == ["calls"]:
        return channels.calls_as_json() if as_json else channels.calls_as_text()
    return "-USAGE: fake switch answers only: show channels|calls [as json]\n"

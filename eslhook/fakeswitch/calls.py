"""Channel events the fake switch makes up: a killed call's hangup, an
originated call, an executed application.  Pure: each function returns
``(Event-Name, headers)`` pairs; the server stamps and publishes them.

They start from a real channel's last headers (a *snapshot*) or, for
``originate``, a recorded CHANNEL_CREATE (the *template*), so a client
sees the same header set it sees on replayed events.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import NamedTuple

from eslhook.fakeswitch.capture import CapturedEvent

# Stamped on every fired event (switch_event_prep_for_delivery), so never
# copied from a snapshot or from what a client sends with sendevent.
STAMPED_HEADERS = frozenset(h.lower() for h in (
    "Event-Name", "Core-UUID", "FreeSWITCH-Hostname", "FreeSWITCH-Switchname",
    "FreeSWITCH-IPv4", "FreeSWITCH-IPv6", "Event-Date-Local", "Event-Date-GMT",
    "Event-Date-Timestamp", "Event-Calling-File", "Event-Calling-Function",
    "Event-Calling-Line-Number", "Event-Sequence"))

CALLING = {
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", "628"),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", "3971"),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", "2963"),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", "3013"),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", "3536"),
    "CHANNEL_HANGUP_COMPLETE": ("switch_core_state_machine.c",
                                "switch_core_session_reporting_state", "950"),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", "1744"),
}

ORIGINATE_SYNTAX = ("<call url> <exten>|&<application_name>(<app_args>) [<dialplan>] "
                    "[<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]")
_LEG_ONLY = ("Other-Leg-", "Other-Type", "Bridge-")


class Originate(NamedTuple):
    variables: dict[str, str]  # the {...} block
    endpoint: str              # sofia/internal/1000@127.0.0.1:5080
    target: str                # &park() or an extension


# With no recording to copy from: the headers every channel event has.
MINIMAL_TEMPLATE = {
    "Channel-State": "CS_INIT", "Channel-Call-State": "DOWN", "Channel-State-Number": "2",
    "Channel-Name": "", "Unique-ID": "", "Call-Direction": "outbound",
    "Presence-Call-Direction": "outbound", "Channel-HIT-Dialplan": "false",
    "Channel-Call-UUID": "", "Answer-State": "ringing", "Caller-Direction": "outbound",
    "Caller-Logical-Direction": "outbound", "Caller-Caller-ID-Name": "",
    "Caller-Caller-ID-Number": "0000000000", "Caller-Orig-Caller-ID-Name": "",
    "Caller-Orig-Caller-ID-Number": "0000000000", "Caller-Destination-Number": "",
    "Caller-Unique-ID": "", "Caller-Source": "src/switch_ivr_originate.c",
    "Caller-Context": "default", "Caller-Channel-Name": "", "Caller-Profile-Index": "1",
    "Caller-Channel-Created-Time": "0", "Caller-Channel-Answered-Time": "0",
    "Caller-Channel-Hangup-Time": "0",
}


def pick_template(events: list[CapturedEvent]) -> Mapping[str, str]:
    """A recorded CHANNEL_CREATE to copy originated calls from (outbound first)."""
    creates = [e.headers for e in events if e.name == "CHANNEL_CREATE"]
    outbound = [h for h in creates if h.get("Call-Direction") == "outbound"]
    return (outbound or creates or [MINIMAL_TEMPLATE])[0]


def parse_originate(arg: str) -> Originate | None:
    text = arg.strip()
    variables: dict[str, str] = {}
    if text.startswith("{") and "}" in text:
        block, text = text[1:].split("}", 1)
        for item in block.split(","):
            name, _, value = item.partition("=")
            if name.strip():
                variables[name.strip()] = value.strip().strip("'\"")
    words = text.split()
    if len(words) < 2:
        return None
    return Originate(variables, words[0], words[1])


def _destination(endpoint: str) -> str:
    parts = endpoint.split("/")
    tail = parts[-1] if parts[0] == "sofia" else (parts[1] if len(parts) > 1 else parts[0])
    return tail.split("@")[0]


def _base(snapshot: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in snapshot.items() if k.lower() not in STAMPED_HEADERS}


def _with(base: dict[str, str], **fields: str) -> list[tuple[str, str]]:
    """Base headers in their order, ``fields`` (underscores as dashes) set."""
    changed = {k.replace("_", "-"): v for k, v in fields.items()}
    merged = dict(base)
    merged.update(changed)
    return list(merged.items())


def hangup_events(snapshot: Mapping[str, str], cause: str,
                  now_us: int | None = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """What a real switch fires when a channel is killed: HANGUP,
    HANGUP_COMPLETE (Hangup-Cause twice, as real ones have), DESTROY."""
    stamp = str(now_us if now_us is not None else int(time.time() * 1_000_000))
    base = _base(snapshot)
    base["Caller-Channel-Hangup-Time"] = stamp
    base["variable_hangup_cause"] = cause
    hangup = _with(base, Channel_State="CS_HANGUP", Channel_State_Number="10",
                   Channel_Call_State="HANGUP", Answer_State="hangup", Hangup_Cause=cause)
    complete = _with(base, Channel_State="CS_REPORTING", Channel_State_Number="11",
                     Channel_Call_State="HANGUP", Answer_State="hangup", Hangup_Cause=cause)
    destroy = _with(base, Channel_State="CS_REPORTING", Channel_State_Number="12",
                    Channel_Call_State="HANGUP", Answer_State="hangup", Hangup_Cause=cause)
    return [("CHANNEL_HANGUP", hangup),
            ("CHANNEL_HANGUP_COMPLETE", complete + [("Hangup-Cause", cause)]),
            ("CHANNEL_DESTROY", destroy)]


def originate_events(template: Mapping[str, str], request: Originate, unique_id: str,
                     core_uuid: str, now_us: int | None = None
                     ) -> list[tuple[str, list[tuple[str, str]]]]:
    """CHANNEL_CREATE and CHANNEL_ANSWER of a new outbound channel copied
    from the template, then the application it was sent to (if one)."""
    stamp = str(now_us if now_us is not None else int(time.time() * 1_000_000))
    old_id = template.get("Unique-ID", "")
    base = {k: (v.replace(old_id, unique_id) if old_id else v)
            for k, v in _base(template).items() if not k.startswith(_LEG_ONLY)}
    base.update({
        "Unique-ID": unique_id, "Channel-Call-UUID": unique_id, "Call-Direction": "outbound",
        "Channel-Name": request.endpoint, "Caller-Channel-Name": request.endpoint,
        "Caller-Unique-ID": unique_id, "Caller-Destination-Number": _destination(request.endpoint),
        "Caller-Channel-Created-Time": stamp, "Caller-Channel-Answered-Time": "0"})
    names = {"origination_caller_id_name": "Caller-Caller-ID-Name",
             "origination_caller_id_number": "Caller-Caller-ID-Number"}
    for variable, header in names.items():
        if variable in request.variables:
            base[header] = request.variables[variable]
    for variable, value in request.variables.items():
        base["variable_" + variable] = value
    create = _with(base, Channel_State="CS_INIT", Channel_State_Number="2",
                   Channel_Call_State="DOWN", Answer_State="ringing")
    base["Caller-Channel-Answered-Time"] = stamp
    answer = _with(base, Channel_State="CS_CONSUME_MEDIA", Channel_State_Number="7",
                   Channel_Call_State="RINGING", Answer_State="answered")
    events = [("CHANNEL_CREATE", create), ("CHANNEL_ANSWER", answer)]
    if request.target.startswith("&"):
        app, _, rest = request.target[1:].partition("(")
        events.append(("CHANNEL_EXECUTE", _with(
            base, Channel_State="CS_EXECUTE", Channel_State_Number="4",
            Channel_Call_State="ACTIVE", Answer_State="answered",
            Application=app, Application_Data=rest.rstrip(")"),
            Application_UUID=unique_id)))
    return events


def execute_events(snapshot: Mapping[str, str], app: str, app_arg: str, app_uuid: str
                   ) -> list[tuple[str, list[tuple[str, str]]]]:
    """``sendmsg`` ``call-command: execute``: EXECUTE then EXECUTE_COMPLETE,
    both with the client's ``Event-UUID`` as ``Application-UUID``."""
    base = _base(snapshot)
    fields = {"Application": app, "Application-Data": app_arg, "Application-UUID": app_uuid}
    started = list({**base, **fields}.items())
    done = list({**base, **fields, "Application-Response": "_none_"}.items())
    return [("CHANNEL_EXECUTE", started), ("CHANNEL_EXECUTE_COMPLETE", done)]

"""Kazoo's orders and keys on events built here, for what the captures do not show
(mod_kazoo's definitions: hangup-cause.xml, hangup-code.xml, timestamp.xml,
call-duration.xml, caller-id.xml, from-to.xml; webhooks_channel_util.erl)."""

from __future__ import annotations

import pytest

from eslhook.accounts import AccountDirectory
from eslhook.config import AccountConfig, PayloadConfig
from eslhook.mapping import GREGORIAN_UNIX_OFFSET_SECONDS, channel_payload

NONE = AccountDirectory()


def mapped(accounts: AccountDirectory = NONE, settings: PayloadConfig = PayloadConfig(),
           **headers: str) -> dict:
    event = {name.replace("__", "-"): value for name, value in headers.items()}
    event.setdefault("Event-Name", "CHANNEL_HANGUP_COMPLETE")
    payload = channel_payload(event, switch="fs1", accounts=accounts, settings=settings)
    assert payload is not None
    return payload


CAUSES = dict(variable_bridge_hangup_cause="NORMAL_CLEARING",
              variable_hangup_cause="USER_BUSY", Hangup__Cause="CALL_REJECTED")


@pytest.mark.parametrize("application, cause", [
    ("bridge", "NORMAL_CLEARING"),      # while bridging, the bridge's cause first
    ("park", "USER_BUSY"), (None, "USER_BUSY")])
def test_hangup_cause_in_mod_kazoos_order(application, cause):
    extra = {"variable_current_application": application} if application else {}
    assert mapped(**CAUSES, **extra)["hangup_cause"] == cause
    failed = mapped(**CAUSES, **extra, variable_originate_failed_cause="NO_ANSWER")
    assert failed["hangup_cause"] == "NO_ANSWER"       # always first
    assert mapped(Hangup__Cause="CALL_REJECTED", **extra)["hangup_cause"] == "CALL_REJECTED"


def test_hangup_code_is_the_legs_own_then_the_last_bridges_then_sip_term_status():
    both = dict(variable_proto_specific_hangup_cause="sip:486",
                variable_last_bridge_proto_specific_hangup_cause="sip:200",
                variable_sip_term_status="404", Hangup__Cause="USER_BUSY")
    assert mapped(**both)["hangup_code"] == "sip:486"
    del both["variable_proto_specific_hangup_cause"]
    assert mapped(**both)["hangup_code"] == "sip:200"
    del both["variable_last_bridge_proto_specific_hangup_cause"]
    assert mapped(**both)["hangup_code"] == "sip:404"


@pytest.mark.parametrize("micros, seconds", [
    ("1000000", 1), ("1000001", 2), ("1999999", 2), ("0", 0)])
def test_timestamp_is_rounded_up(micros, seconds):
    got = mapped(Event__Date__Timestamp=micros)["timestamp"]
    assert got == seconds + GREGORIAN_UNIX_OFFSET_SECONDS


@pytest.mark.parametrize("billmsec, billsec, seconds", [
    ("1020", "1", 2), ("1000", "1", 1), ("0", "0", 0), (None, "7", 7), ("bad", "7", 7),
    ("bad", None, None)])
def test_billing_seconds_is_billmsec_rounded_up_else_billsec(billmsec, billsec, seconds):
    headers = {"variable_billsec": billsec} if billsec is not None else {}
    if billmsec is not None:
        headers["variable_billmsec"] = billmsec
    assert mapped(**headers).get("billing_seconds") == seconds


def test_callee_falls_back_to_the_other_legs_caller_id():
    got = mapped(Other__Leg__Caller__ID__Name="Bob", Other__Leg__Caller__ID__Number="1001")
    assert (got["callee_id_name"], got["callee_id_number"]) == ("Bob", "1001")
    got = mapped(Caller__Callee__ID__Number="1002", Other__Leg__Caller__ID__Number="1001")
    assert got["callee_id_number"] == "1002"


@pytest.mark.parametrize("present, request_uri", [
    (("sip_req_uri", "sip_invite_req_uri", "sip_loopback_req_uri"), "sip_req_uri"),
    (("sip_invite_req_uri", "sip_loopback_req_uri", "sip_to_uri"), "sip_invite_req_uri"),
    (("sip_loopback_req_uri", "sip_to_uri"), "sip_loopback_req_uri"),
    (("sip_to_uri", "sip_invite_to_uri"), "sip_to_uri"),
    (("sip_invite_to_uri",), "sip_invite_to_uri")])
def test_request_tries_kazoos_sources_in_order(present, request_uri):
    headers = {"variable_" + name: name + "@h" for name in present}
    got = mapped(Caller__Destination__Number="1000", **headers)
    assert got["request"] == request_uri + "@h"
    assert mapped(Caller__Destination__Number="1000")["request"] == "1000"   # eslhook's


def outbound(event_name: str, **variables: str) -> dict:
    """An outbound sofia leg to a registered 1003 as NEventSocket's public Example1
    capture showed it (issue 12): no sip_from_uri until answered, presence_id the
    callee itself, request and to carrying the contact's parameters."""
    headers = {"Event-Name": event_name, "Call-Direction": "outbound",
               "Unique-ID": "b-leg", "Channel-Name": "sofia/internal/1003@172.16.50.134:5070",
               "Caller-Caller-ID-Number": "1001", "Caller-Orig-Caller-ID-Number": "1001",
               "Caller-Destination-Number": "1003", "Caller-Callee-ID-Number": "1003",
               "variable_presence_id": "1003@172.16.50.134",
               "variable_sip_req_uri": "1003@172.16.50.134:5070;line=df90abc",
               "variable_sip_from_host": "172.16.50.134",
               **{"variable_" + k: v for k, v in variables.items()}}
    payload = channel_payload(headers, switch="fs1", accounts=NONE)
    assert payload is not None
    return payload


def test_an_outbound_legs_from_and_to_are_stable_plain_and_never_its_callee():
    create = outbound("CHANNEL_CREATE")
    answer = outbound("CHANNEL_ANSWER", sip_from_uri="1001@172.16.50.134",
                      sip_to_uri="1003@172.16.50.134:5070;line=df90abc",
                      sip_contact_uri="1003@172.16.50.134:5070;line=df90abc")
    destroy = outbound("CHANNEL_HANGUP_COMPLETE", sip_from_uri="1001@172.16.50.134",
                       sip_to_uri="1003@172.16.50.134")
    for payload in (create, answer, destroy):
        assert payload["from"] == "1001@172.16.50.134"
        assert payload["to"] == "1003@172.16.50.134:5070"


def test_an_inbound_legs_from_and_to_lose_their_parameters_too():
    got = mapped(Call__Direction="inbound",
                 variable_sip_from_uri="<sip:1001@example.com>;tag=x",
                 variable_sip_to_uri="1003@example.com;user=phone")
    assert (got["from"], got["to"]) == ("1001@example.com", "1003@example.com")


def test_authorizing_from_ecallmgr_variables_wins_over_what_freeswitch_tells():
    device = dict(variable_sip_auth_username="1010", variable_sip_auth_realm="pbx")
    assert (mapped(**device)["authorizing_type"], mapped(**device)["authorizing_id"]) == (
        "device", "1010@pbx")
    kazoo = {"variable_ecallmgr_Authorizing-ID": "abc", "variable_ecallmgr_Authorizing-Type":
             "user"}
    got = channel_payload({"Event-Name": "CHANNEL_CREATE", **device, **kazoo},
                          switch="fs1", accounts=NONE)
    assert (got["authorizing_type"], got["authorizing_id"]) == ("user", "abc")
    assert "authorizing_id" not in mapped()


def test_owner_id_from_the_directory_else_ecallmgr():
    assert mapped(variable_owner_id="o1")["owner_id"] == "o1"
    event = {"Event-Name": "CHANNEL_CREATE", "variable_ecallmgr_Owner-ID": "o2"}
    assert channel_payload(event, switch="fs1", accounts=NONE)["owner_id"] == "o2"


def test_a_global_resource_is_used_but_not_local():
    event = {"Event-Name": "CHANNEL_CREATE", "variable_ecallmgr_Resource-ID": "carrier9",
             "variable_ecallmgr_Global-Resource": "true"}
    got = channel_payload(event, switch="fs1", accounts=NONE)
    assert got["local_resource_used"] is False and "local_resource_id" not in got


@pytest.mark.parametrize("header", ["variable_sip_h_Diversion", "variable_sip_h_History-Info"])
def test_call_forwarded_by_diversion_or_history_info(header):
    event = {"Event-Name": "CHANNEL_CREATE", header: "<sip:+15550001111@h>;reason=unconditional"}
    assert channel_payload(event, switch="fs1", accounts=NONE)["call_forwarded"] is True


def test_emergency_by_configured_pattern_or_variable():
    settings = PayloadConfig(emergency_numbers=r"9(11|33)|112")
    assert mapped(settings=settings, Caller__Destination__Number="911")[
        "emergency_resource_used"] is True
    assert mapped(settings=settings, Caller__Destination__Number="9110")[
        "emergency_resource_used"] is False               # the whole number must match
    event = {"Event-Name": "CHANNEL_CREATE", "variable_ecallmgr_Emergency-Resource": "true"}
    assert channel_payload(event, switch="fs1", accounts=NONE)["emergency_resource_used"]
    own = PayloadConfig(emergency_variable="is_emergency")
    assert mapped(settings=own, variable_is_emergency="1")["emergency_resource_used"] is True


def test_inception_and_cluster_id():
    event = {"Event-Name": "CHANNEL_CREATE", "variable_ecallmgr_Inception": "offnet"}
    got = channel_payload(event, switch="fs1", accounts=NONE,
                          settings=PayloadConfig(cluster_id="c9"))
    assert (got["inception"], got["cluster_id"]) == ("offnet", "c9")
    assert "cluster_id" not in mapped()


def test_reseller_is_the_nearest_flagged_ancestor_else_the_top_of_the_tree():
    top, mid, leaf, lone = "a" * 32, "b" * 32, "c" * 32, "d" * 32
    flagged = AccountDirectory([AccountConfig(id=top), AccountConfig(id=mid, parent_id=top,
                                                                       reseller=True),
                                AccountConfig(id=leaf, parent_id=mid), AccountConfig(id=lone)])
    assert [flagged.reseller_of(a) for a in (top, mid, leaf, lone)] == [top, top, mid, lone]
    got = mapped(flagged, variable_account_id=leaf)
    assert (got["account_id"], got["reseller_id"]) == (leaf, mid)
    assert "reseller_id" not in mapped()                  # no account, no reseller


def test_kazoo_variables_off_sends_only_the_globs_and_what_freeswitch_tells():
    event = {"Event-Name": "CHANNEL_CREATE", "variable_cav_campaign": "spring",
             "variable_ecallmgr_Owner-ID": "o2", "variable_my_var": "x",
             "variable_sip_auth_username": "1010", "variable_sip_auth_realm": "pbx"}
    on = channel_payload(event, switch="fs1", accounts=NONE, channel_variables=("my_*",))
    assert on["custom_application_vars"] == {"campaign": "spring"}
    assert on["custom_channel_vars"] == {"Owner-ID": "o2", "my_var": "x"}
    assert on["owner_id"] == "o2"
    off = channel_payload(event, switch="fs1", accounts=NONE, channel_variables=("my_*",),
                          settings=PayloadConfig(kazoo_variables=False))
    assert "custom_application_vars" not in off and "owner_id" not in off
    assert off["custom_channel_vars"] == {"my_var": "x"}
    assert off["authorizing_id"] == "1010@pbx"

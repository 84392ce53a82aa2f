"""sip.transaction: timers as plain ``now`` arithmetic (A/B/D/M, E/F/K, G/H/I/L, J), UDP vs TCP,
the matching table (retransmissions absorbed or answered again, ACK for non-2xx, stray 2xx/ACK
delivered to the dialog layer), and one run under trio's MockClock the way the adapter will drive it."""

from __future__ import annotations

import trio
import trio.testing
from pms_trio.sip import message as m
from pms_trio.sip import transaction as t
from pms_trio.sip.addressing import Destination

T1 = t.T1
DEVICE = Destination("UDP", "192.168.1.64", 5060)
DEVICE_TCP = Destination("TCP", "192.168.1.64", 5060)


def request(method="MESSAGE", branch="z9hG4bKabc", transport="UDP") -> m.Request:
    return m.Request(method, "sip:34020000001320000001@192.168.1.64:5060", (
        ("Via", f"SIP/2.0/{transport} 192.168.1.10:5060;rport;branch={branch}"),
        ("From", "<sip:34020000002000000001@3402000000>;tag=srv1"),
        ("To", "<sip:34020000001320000001@192.168.1.64:5060>"),
        ("Call-ID", "call-1"), ("CSeq", f"7 {method}"), ("Max-Forwards", "70")), b"body")


def sends(outputs):
    return [o for o in outputs if isinstance(o, t.Send)]


def drive(layer: t.TransactionLayer, until: float) -> list[tuple[float, t.Output]]:
    """Jump from deadline to deadline up to ``until``; (time, output) pairs."""
    log = []
    while (deadline := layer.next_deadline()) is not None and deadline <= until:
        log.extend((deadline, o) for o in layer.handle_timeout(deadline))
    return log


def test_non_invite_client_over_udp_retransmits_e_and_times_out_f():
    layer = t.TransactionLayer()
    first = layer.send_request(request(), DEVICE, 0.0)
    assert len(sends(first)) == 1 and sends(first)[0].destination == DEVICE
    log = drive(layer, 100.0)
    times = [at for at, o in log if isinstance(o, t.Send)]
    # E: T1, then doubling up to T2 (4 s), until F = 64*T1 = 32 s
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [(at, type(o)) for at, o in log if not isinstance(o, t.Send)] == [(32.0, t.TimedOut)]
    assert not layer.clients and layer.next_deadline() is None


def test_non_invite_client_provisional_sets_e_to_t2_and_final_starts_k():
    layer = t.TransactionLayer()
    req = request()
    layer.send_request(req, DEVICE, 0.0)
    drive(layer, 0.5)  # one retransmission
    out = layer.receive(m.response_to(req, 100), DEVICE, 0.6)
    assert [type(o) for o in out] == [t.Deliver]
    assert layer.next_deadline() == 1.5  # the pending E still fires, then every T2
    log = drive(layer, 6.0)
    assert [at for at, o in log if isinstance(o, t.Send)] == [1.5, 5.5]
    ok = m.response_to(req, 200, to_tag="dev")
    assert [type(o) for o in layer.receive(ok, DEVICE, 6.0)] == [t.Deliver]
    assert layer.receive(ok, DEVICE, 6.1) == []  # a retransmitted final is absorbed in Completed
    assert layer.next_deadline() == 6.0 + t.T4  # Timer K
    drive(layer, 20.0)
    assert not layer.clients


def test_non_invite_client_over_tcp_never_retransmits_and_k_is_zero():
    layer = t.TransactionLayer()
    req = request(transport="TCP")
    layer.send_request(req, DEVICE_TCP, 0.0)
    assert layer.next_deadline() == 32.0  # F only
    layer.receive(m.response_to(req, 200, to_tag="d"), DEVICE_TCP, 1.0)
    assert layer.next_deadline() == 1.0
    drive(layer, 1.0)
    assert not layer.clients


def test_invite_client_timer_a_doubles_until_b():
    layer = t.TransactionLayer()
    layer.send_request(request("INVITE"), DEVICE, 0.0)
    log = drive(layer, 40.0)
    assert [at for at, o in log if isinstance(o, t.Send)] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert [at for at, o in log if isinstance(o, t.TimedOut)] == [32.0]


def test_invite_client_non_2xx_is_acked_and_timer_d_absorbs_retransmissions():
    layer = t.TransactionLayer()
    inv = request("INVITE")
    layer.send_request(inv, DEVICE, 0.0)
    assert [type(o) for o in layer.receive(m.response_to(inv, 100), DEVICE, 0.1)] == [t.Deliver]
    assert layer.next_deadline() is None  # Proceeding: A and B stopped
    busy = m.response_to(inv, 486, to_tag="dev9")
    out = layer.receive(busy, DEVICE, 1.0)
    assert [type(o) for o in out] == [t.Deliver, t.Send]
    ack = m.parse_datagram(out[1].data)
    assert ack.method == "ACK" and ack.cseq == (7, "ACK") and ack.to.tag == "dev9"
    assert ack.top_via.branch == inv.top_via.branch and ack.uri == inv.uri
    again = layer.receive(busy, DEVICE, 2.0)
    assert [o.data for o in again] == [out[1].data]  # the same ACK again
    assert layer.next_deadline() == 33.0  # Timer D = 32 s
    drive(layer, 33.0)
    assert not layer.clients


def test_invite_client_2xx_goes_to_accepted_and_each_2xx_reaches_the_tu():
    layer = t.TransactionLayer()
    inv = request("INVITE")
    layer.send_request(inv, DEVICE, 0.0)
    ok = m.response_to(inv, 200, to_tag="dev1")
    assert [type(o) for o in layer.receive(ok, DEVICE, 0.2)] == [t.Deliver]
    assert [type(o) for o in layer.receive(ok, DEVICE, 0.7)] == [t.Deliver]  # the dialog re-ACKs
    assert layer.next_deadline() == 0.2 + 64 * T1  # Timer M
    drive(layer, 60.0)
    assert [type(o) for o in layer.receive(ok, DEVICE, 61)] == [t.Deliver]  # stray: to the dialog layer


def test_server_non_invite_timer_j_and_retransmissions():
    layer = t.TransactionLayer()
    req = request()
    out = layer.receive(req, DEVICE, 0.0)
    assert [type(o) for o in out] == [t.Deliver]
    delivered = out[0].message
    assert delivered.top_via.param("received") == "192.168.1.64"  # rport asked: always stamped
    assert delivered.top_via.param("rport") == "5060"
    assert layer.receive(req, DEVICE, 0.1) == []  # absorbed in Trying
    sent = layer.send_response(delivered, m.response_to(delivered, 200, to_tag="srv"), 0.2)
    assert sends(sent)[0].destination == DEVICE
    assert [o.data for o in layer.receive(req, DEVICE, 0.4)] == [sent[0].data]  # answered again
    assert layer.next_deadline() == 0.2 + 64 * T1  # Timer J
    drive(layer, 40.0)
    assert not layer.servers
    assert [type(o) for o in layer.receive(req, DEVICE, 41.0)] == [t.Deliver]  # a new transaction


def test_server_non_invite_over_tcp_j_is_zero():
    layer = t.TransactionLayer()
    req = request(transport="TCP")
    delivered = layer.receive(req, DEVICE_TCP, 0.0)[0].message
    layer.send_response(delivered, m.response_to(delivered, 200), 1.0)
    assert layer.next_deadline() == 1.0
    drive(layer, 1.0)
    assert not layer.servers


def test_server_answers_behind_nat_at_the_source():
    layer = t.TransactionLayer()
    req = request()
    source = Destination("UDP", "203.0.113.5", 61000)
    delivered = layer.receive(req, source, 0.0)[0].message
    assert delivered.top_via.param("received") == "203.0.113.5"
    out = layer.send_response(delivered, m.response_to(delivered, 200), 0.1)
    assert out[0].destination == source
    answer = m.parse_datagram(out[0].data)
    assert answer.top_via.param("rport") == "61000"


def test_server_invite_100_trying_then_error_g_h_and_ack_i():
    layer = t.TransactionLayer()
    inv = request("INVITE")
    out = layer.receive(inv, DEVICE, 0.0)
    assert [type(o) for o in out] == [t.Send, t.Deliver]
    assert m.parse_datagram(out[0].data).status == 100
    assert [m.parse_datagram(o.data).status for o in layer.receive(inv, DEVICE, 0.3)] == [100]
    delivered = out[1].message
    layer.send_response(delivered, m.response_to(delivered, 486, to_tag="x"), 1.0)
    log = drive(layer, 10.0)
    assert [at for at, o in log if isinstance(o, t.Send)] == [1.5, 2.5, 4.5, 8.5]  # G: T1, 2T1.. cap T2
    ack = m.Request("ACK", inv.uri, (("Via", inv.header("Via")), ("From", inv.header("From")),
                                      ("To", inv.header("To") + ";tag=x"), ("Call-ID", "call-1"), ("CSeq", "7 ACK")))
    assert layer.receive(ack, DEVICE, 10.0) == []
    assert layer.next_deadline() == 10.0 + t.T4  # Timer I
    drive(layer, 20.0)
    assert not layer.servers


def test_server_invite_without_ack_times_out_h():
    layer = t.TransactionLayer()
    inv = request("INVITE")
    delivered = layer.receive(inv, DEVICE, 0.0)[1].message
    layer.send_response(delivered, m.response_to(delivered, 404, to_tag="x"), 0.0)
    log = drive(layer, 100.0)
    assert [at for at, o in log if isinstance(o, t.TimedOut)] == [32.0]


def test_server_invite_2xx_is_resent_on_retransmitted_invite_and_ack_for_2xx_goes_to_dialog():
    layer = t.TransactionLayer()
    inv = request("INVITE")
    delivered = layer.receive(inv, DEVICE, 0.0)[1].message
    ok = layer.send_response(delivered, m.response_to(delivered, 200, to_tag="x"), 0.1)
    assert [o.data for o in layer.receive(inv, DEVICE, 0.5)] == [ok[0].data]
    ack = m.Request("ACK", inv.uri, (("Via", "SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKnew"),
                                      ("From", inv.header("From")), ("To", inv.header("To") + ";tag=x"),
                                      ("Call-ID", "call-1"), ("CSeq", "7 ACK")))
    assert [type(o) for o in layer.receive(ack, DEVICE, 0.6)] == [t.Deliver]


def test_unanswered_server_transaction_is_dropped():
    layer = t.TransactionLayer()
    layer.receive(request(), DEVICE, 0.0)
    log = drive(layer, 100.0)
    assert [at for at, o in log if isinstance(o, t.TimedOut)] == [32.0] and not layer.servers


def test_table_is_bounded():
    layer = t.TransactionLayer(max_transactions=2)
    for n in range(2):
        layer.receive(request(branch=f"z9hG4bK{n}"), DEVICE, 0.0)
    out = layer.receive(request(branch="z9hG4bK9"), DEVICE, 0.0)
    assert [m.parse_datagram(o.data).status for o in out] == [503]


def test_under_trio_mock_clock_timer_f_fires_after_64_t1():
    async def main():
        layer = t.TransactionLayer()
        sent_at = []
        for _ in layer.send_request(request(), DEVICE, trio.current_time()):
            sent_at.append(trio.current_time())
        while True:
            deadline = layer.next_deadline()
            if deadline is None:
                break
            await trio.sleep_until(deadline)
            outputs = layer.handle_timeout(trio.current_time())
            sent_at.extend(trio.current_time() for o in outputs if isinstance(o, t.Send))
            if any(isinstance(o, t.TimedOut) for o in outputs):
                return trio.current_time(), sent_at
        raise AssertionError("no timeout")

    clock = trio.testing.MockClock(autojump_threshold=0)
    timed_out, sent_at = trio.run(main, clock=clock)
    assert timed_out == 64 * T1
    assert len(sent_at) == 11 and sent_at[:4] == [0.0, 0.5, 1.5, 3.5]

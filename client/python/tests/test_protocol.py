"""The trainer's protocol engine with time passed in (docs/protocol.md §3, §6, §7, §9): hello and
retries, welcome, refusals (version → ProtocolVersionError), busy until the connect timeout,
acks and cumulative credit on take, nacks after silence, heartbeats, resets, malformed input."""

import json
import unittest

from shardline.errors import ConnectTimeoutError, FormatError, ProtocolVersionError, RefusedError
from shardline.protocol import ProtocolOptions, ReceiverProtocol
from shardline.wire import Position, encode_frame


def options(**over):
    values = dict(job="mnist", rank=0, client_id="trainer-0", host_id="node-a", window=2, resend_after=0.25, heartbeat=1.0, hello_retry=1.0, connect_timeout=5.0)
    values.update(over)
    return ProtocolOptions(**values)


def sent(outgoing):
    return [(kind, json.loads(data)) for kind, data in outgoing]


def event(**message):
    message.setdefault("version", 1)
    return json.dumps(message).encode()


def welcome(session, next_=(0, 0), **over):
    message = dict(type="welcome", session=session, job="mnist", rank=0, next={"epoch": next_[0], "step": next_[1]},
                   maxCredits=8, maxBatchBytes=1 << 20, loaderId="loader", hostId="node-b")
    return event(**{**message, **over})


def frame(session, epoch, step, data=b"batch", rank=0):
    return encode_frame(session, "mnist", rank, epoch, step, 0, 1, len(data), data)


class ProtocolTest(unittest.TestCase):
    def open(self, **over):
        p = ReceiverProtocol(options(**over))
        [(kind, hello)] = sent(p.connect(0.0, "start"))
        self.assertEqual(kind, "hello")
        p.on_events(welcome(hello["session"]), 0.0)
        self.assertEqual(p.state, "open")
        return p

    def test_hello_carries_the_window_and_resume_point(self):
        p = ReceiverProtocol(options(resume=Position(3, 4)))
        [(_, hello)] = sent(p.connect(0.0, "start"))
        self.assertEqual((hello["credits"], hello["resume"], hello["clientId"], hello["version"]), (2, {"epoch": 3, "step": 4}, "trainer-0", 1))
        self.assertTrue(1 <= hello["session"] < 2**32)

    def test_hello_retries_with_a_new_session_then_times_out(self):
        p = ReceiverProtocol(options())
        [(_, first)] = sent(p.connect(0.0, "start"))
        self.assertEqual(p.tick(0.5), [])
        [(_, retry)] = sent(p.tick(1.0))
        self.assertNotEqual(retry["session"], first["session"])
        p.on_events(event(type="refused", session=retry["session"], reason="busy", message="client x holds it", supportedVersions=[1]), 1.1)
        self.assertEqual(p.state, "connecting")
        p.tick(5.0)
        self.assertEqual(p.state, "failed")
        self.assertIsInstance(p.failure, ConnectTimeoutError)
        self.assertIn("client x holds it", str(p.failure))
        self.assertIn("'mnist' rank 0", str(p.failure))

    def test_a_version_refusal_is_a_clear_protocol_version_error(self):
        p = ReceiverProtocol(options(protocol_version=2))
        [(_, hello)] = sent(p.connect(0.0, "start"))
        self.assertEqual(hello["version"], 2)
        p.on_events(event(type="refused", version=1, session=hello["session"], reason="version",
                          message="protocol version 2 is not supported; this loader speaks version 1", supportedVersions=[1]), 0.1)
        self.assertEqual(p.state, "failed")
        self.assertIsInstance(p.failure, ProtocolVersionError)
        self.assertEqual(p.failure.supported_versions, (1,))
        self.assertIn("protocol version 2", str(p.failure))

    def test_job_rank_and_resume_refusals_fail_naming_the_reason(self):
        for reason in ("job", "rank", "resume"):
            p = ReceiverProtocol(options())
            [(_, hello)] = sent(p.connect(0.0, "start"))
            p.on_events(event(type="refused", session=hello["session"], reason=reason, message=f"wrong {reason}", supportedVersions=[1]), 0.1)
            self.assertIsInstance(p.failure, RefusedError)
            self.assertEqual(p.failure.reason, reason)
            self.assertIn(f"wrong {reason}", str(p.failure))

    def test_messages_of_other_sessions_and_odd_welcomes_are_ignored(self):
        p = ReceiverProtocol(options(resume=Position(1, 0)))
        [(_, hello)] = sent(p.connect(0.0, "start"))
        s = hello["session"]
        p.on_events(welcome(s + 1 if s < 2**32 - 1 else 1, (1, 0)), 0.0)
        p.on_events(welcome(s, (1, 0), job="other"), 0.0)
        p.on_events(welcome(s, (0, 0)), 0.0)  # not the resume point asked for
        p.on_events(b"\xff garbage", 0.0)
        self.assertEqual(p.state, "connecting")
        p.on_events(welcome(s, (1, 0)), 0.0)
        self.assertEqual(p.state, "open")

    def test_take_acks_the_item_and_grants_cumulative_credit(self):
        p = self.open()
        s = p.session
        self.assertTrue(p.on_data(frame(s, 0, 0), 0.1).readable)
        item, out = p.take(0.2)
        self.assertEqual(item.position, Position(0, 0))
        self.assertEqual(sent(out), [("ctl", {"type": "ack", "version": 1, "session": s, "epoch": 0, "step": 0}),
                                     ("ctl", {"type": "credit", "version": 1, "session": s, "granted": 3, "waitedSeconds": 0.0})])
        p.on_events(event(type="end-of-epoch", session=s, epoch=0, batches=1), 0.3)
        item, out = p.take(0.3)
        self.assertEqual(item.position, Position(0, 1))
        self.assertEqual([m["type"] for _, m in sent(out)], ["ack", "credit"])
        self.assertEqual(sent(out)[1][1]["granted"], 3, "an end marker takes no credit")

    def test_credits_carry_the_session_wait_and_a_new_session_starts_from_zero(self):
        p = self.open()
        s = p.session
        p.add_wait(0.25)
        p.add_wait(0.5)
        p.add_wait(-1.0)  # nothing
        beat = sent(p.tick(1.0))
        self.assertIn(("ctl", {"type": "credit", "version": 1, "session": s, "granted": 2, "waitedSeconds": 0.75}), beat)
        p.connect(1.1, "reset")
        p.on_events(welcome(p.session, (0, 0)), 1.2)
        credits = [m for _, m in sent(p.tick(2.5)) if m["type"] == "credit"]
        self.assertEqual(credits[0]["waitedSeconds"], 0.0, "the loader counts per session")

    def test_nack_after_silence_names_the_missing_chunks(self):
        p = self.open()
        s = p.session
        data = bytes(range(200))
        p.on_data(encode_frame(s, "mnist", 0, 0, 0, 1, 4, 64, data), 0.0)
        self.assertEqual(p.tick(0.1), [])
        [(_, nack)] = sent(p.tick(0.3))
        self.assertEqual(nack, {"type": "nack", "version": 1, "session": s, "epoch": 0, "step": 0, "chunks": [0, 2, 3]})

    def test_a_late_tick_from_a_busy_process_does_not_nack(self):
        p = self.open()
        s = p.session
        p.tick(0.1)
        p.on_data(encode_frame(s, "mnist", 0, 0, 0, 0, 2, 4, bytes(8)), 0.12)
        self.assertEqual([m for _, m in sent(p.tick(3.0)) if m["type"] == "nack"], [], "the loop was busy: no nack")
        self.assertEqual([m for _, m in sent(p.tick(3.1)) if m["type"] == "nack"], [])
        [nack] = [m for _, m in sent(p.tick(3.3)) if m["type"] == "nack"]
        self.assertEqual(nack["chunks"], [1], "real silence after it still asks")

    def test_repeated_nacks_of_one_item_back_off_and_progress_resets_them(self):
        p = self.open()
        s = p.session
        p.on_data(encode_frame(s, "mnist", 0, 0, 0, 0, 3, 4, bytes(12)), 0.0)
        at = [round(t * 0.05, 2) for t in range(1, 121) if any(m["type"] == "nack" for _, m in sent(p.tick(round(t * 0.05, 2))))]
        self.assertEqual(at[:5], [0.25, 0.75, 1.75, 3.75, 5.75], "gaps of 1x, 2x, 4x, 8x, then 8x resend_after")
        p.on_data(encode_frame(s, "mnist", 0, 0, 0, 1, 3, 4, bytes(12)), 6.0)
        after = [round(6 + t * 0.05, 2) for t in range(1, 17) if any(m["type"] == "nack" for _, m in sent(p.tick(round(6 + t * 0.05, 2))))]
        self.assertEqual(after, [6.25, 6.75], "a chunk arrived: back to 1x")

    def test_nack_of_a_whole_item_and_heartbeat(self):
        p = self.open()
        s = p.session
        [(_, nack)] = sent(p.tick(0.25))
        self.assertEqual((nack["type"], nack["epoch"], nack["step"], "chunks" in nack), ("nack", 0, 0, False))
        beat = sent(p.tick(1.0))
        self.assertIn(("ctl", {"type": "credit", "version": 1, "session": s, "granted": 2, "waitedSeconds": 0.0}), beat)
        self.assertNotIn("ack", [m["type"] for _, m in beat], "nothing consumed yet: no ack")

    def test_reset_starts_a_new_session_from_the_consumer_position(self):
        p = self.open()
        s = p.session
        p.on_data(frame(s, 0, 0), 0.0)
        p.take(0.0)
        p.on_data(frame(s, 0, 1), 0.0)  # received, not consumed: dropped with the session
        step = p.on_events(event(type="reset", session=s, reason="unknown session"), 0.1)
        [(_, hello)] = sent(step.outgoing)
        self.assertEqual(hello["resume"], {"epoch": 0, "step": 1})
        self.assertNotEqual(hello["session"], s)
        self.assertEqual(p.window.buffered_batches, 0)

    def test_malformed_frames_are_logged_and_dropped(self):
        events = []
        p = self.open(on_event=events.append)
        with self.assertLogs("shardline", "WARNING"):
            p.on_data(b"SL\x01\x01short", 0.0)
        self.assertEqual(events[-1]["type"], "malformed")
        self.assertEqual(p.state, "open")

    def test_a_too_large_next_batch_fails_the_stream(self):
        p = self.open(max_batch_bytes=4)
        with self.assertLogs("shardline", "WARNING"):
            p.on_data(frame(p.session, 0, 0, b"12345"), 0.0)
        self.assertEqual(p.state, "failed")
        self.assertIsInstance(p.failure, FormatError)
        self.assertIn("more than max_batch_bytes (4)", str(p.failure))

    def test_close_says_bye_only_when_open(self):
        p = self.open()
        [(_, bye)] = sent(p.close())
        self.assertEqual(bye["type"], "bye")
        self.assertEqual(p.close(), [])


if __name__ == "__main__":
    unittest.main()

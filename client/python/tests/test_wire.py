"""Frames, control messages, subjects and positions (docs/protocol.md §1, §2, §4, §5)."""

import json
import random
import struct
import unittest

from shardline.errors import ArgumentError, FormatError
from shardline.wire import (
    FRAME,
    MAX_CONTROL_MESSAGE_BYTES,
    EndOfEpochMessage,
    Position,
    Refused,
    Reset,
    Welcome,
    decode_frame,
    decode_loader_message,
    delivery_subjects,
    encode_frame,
    encode_hello,
    encode_nack,
    new_session_id,
    require_position,
)


def welcome(**over):
    message = {"type": "welcome", "version": 1, "session": 7, "job": "mnist", "rank": 0, "next": {"epoch": 0, "step": 0},
               "maxCredits": 8, "maxBatchBytes": 1024, "loaderId": "loader-1", "hostId": "node-a"}
    message.update(over)
    return json.dumps(message).encode()


class PositionTest(unittest.TestCase):
    def test_order_and_successor(self):
        self.assertLess(Position(0, 9), Position(1, 0))
        self.assertEqual(Position(2, 3).successor(False), Position(2, 4))
        self.assertEqual(Position(2, 3).successor(True), Position(3, 0))

    def test_require_position(self):
        self.assertEqual(require_position("resume", {"epoch": 1, "step": 2}), Position(1, 2))
        self.assertEqual(require_position("resume", (1, 2)), Position(1, 2))
        for bad in ({"epoch": -1, "step": 0}, (1, 2**32), (True, 0), "1,2", None, (1.0, 2)):
            with self.assertRaises(ArgumentError, msg=repr(bad)):
                require_position("resume", bad)


class SubjectsTest(unittest.TestCase):
    def test_subjects(self):
        s = delivery_subjects("ml", "mnist", 3)
        self.assertEqual((s.hello, s.ctl, s.data, s.events), tuple(f"shardline.ml.mnist.rank.3.{k}" for k in ("hello", "ctl", "data", "events")))

    def test_names_that_could_inject_tokens_are_refused(self):
        for job in ("a.b", "*", ">", "a b", "Mnist", "-a", "a-", "", "x" * 64, "é", 5):
            with self.assertRaises(ArgumentError) as caught:
                delivery_subjects("ml", job, 0)
            self.assertIn("job", str(caught.exception))
        for rank in (-1, 2**32, 1.5, True):
            with self.assertRaises(ArgumentError):
                delivery_subjects("ml", "mnist", rank)

    def test_session_ids(self):
        for _ in range(100):
            s = new_session_id(5)
            self.assertTrue(1 <= s <= 2**32 - 1 and s != 5)


class FrameTest(unittest.TestCase):
    def test_round_trip_of_every_chunk(self):
        batch = bytes(range(256)) * 4 + b"tail"
        count, size = 5, 250
        got = bytearray(len(batch))
        for i in range(count):
            frame = decode_frame(encode_frame(9, "mnist", 2, 1, 7, i, count, size, batch))
            self.assertEqual((frame.session, frame.job, frame.rank, frame.position, frame.index, frame.count), (9, "mnist", 2, Position(1, 7), i, count))
            got[i * size : i * size + len(frame.payload)] = frame.payload
        self.assertEqual(bytes(got), batch)

    def test_empty_batch_is_one_empty_chunk(self):
        frame = decode_frame(encode_frame(1, "j", 0, 0, 0, 0, 1, 0, b""))
        self.assertEqual((frame.count, frame.chunk_size, frame.total_bytes, bytes(frame.payload)), (1, 0, 0, b""))

    def test_matches_the_layout_of_the_specification(self):
        data = encode_frame(0x01020304, "ab", 5, 6, 7, 1, 2, 3, b"xyzw")
        self.assertEqual(data[:4], b"SL\x01\x01")
        self.assertEqual(struct.unpack_from("<IIIIIIIIB", data, 4), (0x01020304, 5, 6, 7, 1, 2, 3, 4, 2))
        self.assertEqual(data[37:], b"abw")

    def corrupt(self, **fields):
        values = dict(magic=b"SL", version=1, kind=1, session=1, rank=0, epoch=0, step=0, index=0, count=1, size=4, total=4, job=b"job", payload=b"abcd")
        values.update(fields)
        v = values
        return FRAME.pack(v["magic"], v["version"], v["kind"], v["session"], v["rank"], v["epoch"], v["step"], v["index"], v["count"], v["size"], v["total"], len(v["job"])) + v["job"] + v["payload"]

    def test_every_broken_rule_is_a_format_error_naming_it(self):
        cases = {
            "does not start": dict(magic=b"XX"),
            "protocol version 2": dict(version=2),
            "kind 2": dict(kind=2),
            "session must not be 0": dict(session=0),
            "not a DNS label": dict(job=b"Bad.Job"),
            "index 1 is outside": dict(index=1),
            "count 2 does not match": dict(count=2),
            "must be 0 for an empty batch": dict(total=0, payload=b""),
            "must carry 4 bytes, got 3": dict(payload=b"abc"),
            "must carry 4 bytes, got 5": dict(payload=b"abcde"),
            "count 1 does not match total bytes 4 in chunks of 0": dict(size=0),
        }
        for why, fields in cases.items():
            with self.assertRaises(FormatError, msg=why) as caught:
                decode_frame(self.corrupt(**fields))
            self.assertIn(why, str(caught.exception))
        decode_frame(self.corrupt())  # the unbroken frame is fine

    def test_truncated_and_random_bytes_give_only_format_errors(self):
        good = encode_frame(3, "mnist", 0, 0, 0, 0, 1, 10, b"0123456789")
        for n in range(len(good)):
            with self.assertRaises(FormatError):
                decode_frame(good[:n])
        rng = random.Random(1234)
        for _ in range(2000):
            data = bytearray(good)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                frame = decode_frame(bytes(data))
            except FormatError:
                continue
            self.assertEqual(len(frame.payload), min(frame.chunk_size, frame.total_bytes - frame.index * frame.chunk_size))


class ControlMessageTest(unittest.TestCase):
    def test_loader_messages(self):
        w = decode_loader_message(welcome())
        self.assertIsInstance(w, Welcome)
        self.assertEqual((w.session, w.job, w.next, w.max_credits, w.loader_id), (7, "mnist", Position(0, 0), 8, "loader-1"))
        e = decode_loader_message(b'{"type":"end-of-epoch","version":1,"session":7,"epoch":2,"batches":0}')
        self.assertEqual(e, EndOfEpochMessage(7, 2, 0))
        r = decode_loader_message(b'{"type":"reset","version":1,"session":7,"reason":"unknown session","extra":1}')
        self.assertEqual(r, Reset(7, "unknown session"))

    def test_a_refusal_of_any_version_is_readable(self):
        r = decode_loader_message(b'{"type":"refused","version":9,"session":7,"reason":"version","message":"no","supportedVersions":[9]}')
        self.assertIsInstance(r, Refused)
        self.assertEqual((r.version, r.reason, r.supported_versions), (9, "version", (9,)))

    def test_invalid_messages_are_format_errors_naming_the_problem(self):
        cases = {
            "over the limit": b" " * (MAX_CONTROL_MESSAGE_BYTES + 1) + b"{}",
            "not valid UTF-8": b'{"type":"\xff"}',
            "not JSON": b"{type:",
            "NaN is not JSON": b'{"type":"reset","version":1,"session":NaN,"reason":""}',
            "must be a JSON object": b"[1]",
            "type \"credit\" is not one of": b'{"type":"credit","version":1,"session":1,"granted":1}',
            "protocol version 2": welcome(version=2),
            "protocol version true": welcome(version=True),
            "field session": welcome(session=0),
            "field rank": welcome(rank=2**32),
            "field job": welcome(job="a.b"),
            "field next": welcome(next={"epoch": 0}),
            "field maxCredits": welcome(maxCredits=1.5),
            "field loaderId": welcome(loaderId="has space"),
            "field reason": b'{"type":"refused","version":1,"session":1,"reason":"nope","message":"","supportedVersions":[]}',
            "field supportedVersions": b'{"type":"refused","version":1,"session":1,"reason":"job","message":"","supportedVersions":[-1]}',
            "field message": json.dumps({"type": "refused", "version": 1, "session": 1, "reason": "job", "message": "m" * 1025, "supportedVersions": []}).encode(),
            "field batches": b'{"type":"end-of-epoch","version":1,"session":1,"epoch":0,"batches":"3"}',
        }
        for why, data in cases.items():
            with self.assertRaises(FormatError, msg=why) as caught:
                decode_loader_message(data)
            self.assertIn(why, str(caught.exception))

    def test_random_bytes_give_only_format_errors(self):
        rng = random.Random(99)
        good = welcome()
        for _ in range(2000):
            data = bytearray(good)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            try:
                decode_loader_message(bytes(data))
            except FormatError:
                pass

    def test_trainer_messages(self):
        hello = json.loads(encode_hello(5, "mnist", 1, "trainer-1", "node-a", 4, Position(2, 3)))
        self.assertEqual(hello, {"type": "hello", "version": 1, "session": 5, "job": "mnist", "rank": 1, "clientId": "trainer-1",
                                 "hostId": "node-a", "credits": 4, "resume": {"epoch": 2, "step": 3}})
        self.assertIsNone(json.loads(encode_hello(5, "mnist", 1, "t", "h", 4, None))["resume"])
        nack = json.loads(encode_nack(5, Position(0, 1), list(range(300))))
        self.assertEqual(len(nack["chunks"]), 256)
        self.assertNotIn("chunks", json.loads(encode_nack(5, Position(0, 1))))


if __name__ == "__main__":
    unittest.main()

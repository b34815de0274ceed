"""The shared-memory transport on the Python side (docs/protocol.md §12): descriptors, the segment
reader against files laid out as the loader writes them, and the protocol's negotiation and
fallback. The loader's real ring is exercised from test/python-client.test.ts."""

import json
import os
import struct
import tempfile
import unittest
import zlib

from shardline.errors import FormatError
from shardline.protocol import ProtocolOptions, ReceiverProtocol
from shardline.shm import HEADER, HEADER_BYTES, ShmReader, StaleDescriptorError, parse_descriptor
from shardline.wire import FRAME, FRAME_MAGIC, FRAME_KIND_SHM, decode_frame, decode_shm_frame, encode_frame

RING = "shardline-mnist-0-abc123"


def write_segment(directory, slot, data, generation=1, state=2, crc=0, ring=RING, capacity=None):
    capacity = len(data) + 16 if capacity is None else capacity
    header = HEADER.pack(b"SHLDSHM1", 1, HEADER_BYTES, slot, os.getpid(), capacity, generation, len(data), state, crc, 0, 0)
    path = os.path.join(directory, f"{ring}-{slot}")
    with open(path, "wb") as f:
        f.write(header + data + bytes(capacity - len(data)))
    return path


def descriptor(slot, data, generation=1, checksum=None, ring=RING):
    d = {"ring": ring, "slot": slot, "generation": generation, "offset": HEADER_BYTES, "length": len(data)}
    if checksum is not None:
        d["checksum"] = checksum
    return d


def shm_frame(session, epoch, step, d, job="mnist", rank=0, total=None):
    payload = json.dumps(d).encode()
    total = d["length"] if total is None else total
    return FRAME.pack(FRAME_MAGIC, 1, FRAME_KIND_SHM, session, rank, epoch, step, 0, 1, total, total, len(job)) + job.encode() + payload


class DescriptorTest(unittest.TestCase):
    def test_hostile_descriptors_are_format_errors_naming_the_field(self):
        good = descriptor(1, b"abc")
        self.assertEqual(parse_descriptor(good).slot, 1)
        cases = [
            ([], "must be an object"),
            ({**good, "path": "/etc/passwd"}, "unknown field"),
            ({**good, "ring": "../../etc/passwd"}, "ring must be a name"),
            ({**good, "ring": "shardline-Bad-0-x"}, "ring must be a name"),
            ({**good, "slot": 1024}, "slot must be an integer"),
            ({**good, "generation": 0}, "generation must be an integer"),
            ({**good, "offset": 0}, "offset must be an integer"),
            ({**good, "length": -1}, "length must be an integer"),
            ({**good, "checksum": 2**32}, "checksum must be an integer"),
            ({**good, "slot": True}, "slot must be an integer"),
        ]
        for value, message in cases:
            with self.assertRaises(FormatError, msg=message) as caught:
                parse_descriptor(value)
            self.assertIn(message, str(caught.exception))


class ReaderTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="shardline-shm-py-")
        self.reader = ShmReader("mnist", 0, self.dir)

    def tearDown(self):
        self.reader.close()
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))
        os.rmdir(self.dir)

    def test_reads_the_batch_and_checks_its_crc(self):
        data = bytes(range(200))
        write_segment(self.dir, 0, data, crc=zlib.crc32(data))
        self.assertEqual(self.reader.read(descriptor(0, data, checksum=zlib.crc32(data))), data)
        self.assertEqual(self.reader.read(descriptor(0, data)), data, "no checksum asked: none checked")

    def test_stale_foreign_missing_and_tampered_segments_are_format_errors(self):
        data = b"x" * 64
        write_segment(self.dir, 0, data, generation=3)
        with self.assertRaisesRegex(StaleDescriptorError, "stale descriptor"):
            self.reader.read(descriptor(0, data, generation=2))
        with self.assertRaisesRegex(FormatError, "not of job mnist rank 0"):
            self.reader.read(descriptor(0, data, generation=3, ring="shardline-other-0-abc123"))
        with self.assertRaisesRegex(FormatError, "does not exist"):
            self.reader.read(descriptor(5, data))
        with self.assertRaisesRegex(FormatError, "checksum 1 is not the slot's 0"):
            self.reader.read(descriptor(0, data, generation=3, checksum=1))
        # The header agrees with the descriptor but the bytes were changed under both: the CRC says so.
        write_segment(self.dir, 4, data, crc=zlib.crc32(b"y" * 64))
        with self.assertRaisesRegex(FormatError, "CRC-32"):
            self.reader.read(descriptor(4, data, checksum=zlib.crc32(b"y" * 64)))
        write_segment(self.dir, 1, data, state=1)
        with self.assertRaisesRegex(FormatError, "being rewritten"):
            self.reader.read(descriptor(1, data))
        os.symlink(os.path.join(self.dir, f"{RING}-0"), os.path.join(self.dir, f"{RING}-2"))
        with self.assertRaises(FormatError):
            self.reader.read(descriptor(2, data, generation=3))
        with open(os.path.join(self.dir, f"{RING}-3"), "wb") as f:
            f.write(b"not a segment" * 20)
        with self.assertRaisesRegex(FormatError, "not a Shardline segment"):
            self.reader.read(descriptor(3, data))


class NegotiationTest(unittest.TestCase):
    def protocol(self, shm):
        events = []
        p = ReceiverProtocol(ProtocolOptions(job="mnist", rank=0, client_id="c", host_id="node-a", window=4, shm=shm, on_event=events.append))
        return p, events

    def open(self, p, transport):
        [(_, hello)] = p.connect(0.0, "start")
        welcome = {"type": "welcome", "version": 1, "session": p.session, "job": "mnist", "rank": 0, "next": {"epoch": 0, "step": 0},
                   "maxCredits": 4, "maxBatchBytes": 1000, "loaderId": "l", "hostId": "node-a", "transport": transport}
        p.on_events(json.dumps(welcome).encode(), 0.0)
        return json.loads(hello)

    def test_an_shm_session_reads_descriptors_and_delivers_the_bytes(self):
        p, _ = self.protocol(True)
        self.assertTrue(self.open(p, "shm")["shm"], "the hello offers shared memory")
        self.assertEqual(p.transport, "shm")
        data = b"batch bytes"
        step = p.on_data(shm_frame(p.session, 0, 0, descriptor(0, data)), 0.1)
        self.assertIsNotNone(step.shm)
        self.assertTrue(p.on_shm_batch(step.shm, data, 0.2).readable)
        item, _ = p.take(0.3)
        self.assertEqual(bytes(item.data), data)

    def test_a_failed_read_says_hello_again_without_the_offer(self):
        p, events = self.protocol(True)
        self.open(p, "shm")
        step = p.on_data(shm_frame(p.session, 0, 0, descriptor(0, b"abc")), 0.1)
        [(_, hello)] = p.shm_failed(step.shm, FormatError("segment does not exist"), 0.2)
        self.assertNotIn("shm", json.loads(hello))
        self.assertEqual([e["type"] for e in events if e["type"] == "shm-failed"], ["shm-failed"])

    def test_no_offer_no_shm_and_stray_shm_frames_are_rejected(self):
        p, events = self.protocol(False)
        self.assertNotIn("shm", self.open(p, "shm"), "no offer in the hello")
        self.assertEqual(p.transport, "nats", "a welcome saying shm to a trainer that did not offer it is not obeyed")
        step = p.on_data(shm_frame(p.session, 0, 0, descriptor(0, b"abc")), 0.1)
        self.assertIsNone(step.shm)
        self.assertTrue(any(e["type"] == "rejected" for e in events))

    def test_a_late_copy_is_not_read_and_a_stale_slot_keeps_shared_memory(self):
        p, events = self.protocol(True)
        self.open(p, "shm")
        first = p.on_data(shm_frame(p.session, 0, 0, descriptor(0, b"abc")), 0.1)
        p.on_shm_batch(first.shm, b"abc", 0.2)
        p.take(0.3)
        late = p.on_data(shm_frame(p.session, 0, 0, descriptor(0, b"abc")), 0.4)
        self.assertIsNone(late.shm, "a copy of a consumed batch is not read")
        self.assertTrue(any(e["type"] == "duplicate" for e in events))
        second = p.on_data(shm_frame(p.session, 0, 1, descriptor(1, b"def")), 0.5)
        self.assertEqual(p.shm_failed(second.shm, StaleDescriptorError("segment x: stale descriptor"), 0.6), [])
        self.assertEqual(p.transport, "shm")
        self.assertFalse(any(e["type"] == "shm-failed" for e in events))

    def test_shm_frames_are_checked_and_never_taken_for_chunks(self):
        frame = shm_frame(9, 1, 2, descriptor(0, b"abcd"))
        self.assertEqual(decode_shm_frame(frame).descriptor["length"], 4)
        with self.assertRaisesRegex(FormatError, "not a batch chunk"):
            decode_frame(frame)
        with self.assertRaisesRegex(FormatError, "not a shared-memory descriptor"):
            decode_shm_frame(encode_frame(9, "mnist", 0, 1, 2, 0, 1, 4, b"abcd"))
        with self.assertRaisesRegex(FormatError, "names 4 bytes, the header says 5"):
            decode_shm_frame(shm_frame(9, 1, 2, descriptor(0, b"abcd"), total=5))
        bad = frame[: -len(json.dumps(descriptor(0, b"abcd")))] + b"{not json"
        with self.assertRaisesRegex(FormatError, "not JSON"):
            decode_shm_frame(bad)


if __name__ == "__main__":
    unittest.main()

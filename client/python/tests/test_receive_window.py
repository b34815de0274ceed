"""Reassembly, stream order, duplicates by position, end markers, memory bounds and nacks
(docs/protocol.md §6, §7), including a seeded simulation through a lossy, duplicating,
reordering network."""

import random
import unittest

from shardline.receive_window import EndOfEpoch, ReceivedBatch, ReceiveWindow
from shardline.wire import Position, decode_frame, encode_frame

JOB, RANK, SESSION = "mnist", 1, 42


def batch_bytes(epoch, step, size):
    return bytes((epoch * 131 + step * 17 + i) & 0xFF for i in range(size))


def frames(epoch, step, size, chunk, session=SESSION, job=JOB, rank=RANK):
    data = batch_bytes(epoch, step, size)
    if size == 0:
        count, chunk = 1, 0
    elif size <= chunk:
        count, chunk = 1, size
    else:
        count = -(-size // chunk)
    return [decode_frame(encode_frame(session, job, rank, epoch, step, i, count, chunk, data)) for i in range(count)]


def opened(window=4, max_batch_bytes=1 << 20, resume=None, start=Position(0, 0)):
    w = ReceiveWindow(JOB, RANK, window, max_batch_bytes, resume)
    w.begin(SESSION)
    assert w.welcome(SESSION, start if resume is None else resume) == "ok"
    return w


def drain(w):
    out = []
    while (item := w.take()) is not None:
        out.append(item)
    return out


class ReceiveWindowTest(unittest.TestCase):
    def test_chunks_in_any_order_reassemble_to_the_batch(self):
        w = opened()
        parts = frames(0, 0, 1000, 64)
        for frame in reversed(parts[1:]):
            self.assertEqual(w.accept_chunk(frame).status, "stored")
        self.assertIsNone(w.take())
        self.assertEqual(w.missing(), (Position(0, 0), [0]))
        outcome = w.accept_chunk(parts[0])
        self.assertTrue(outcome.readable)
        item = w.take()
        self.assertIsInstance(item, ReceivedBatch)
        self.assertEqual(bytes(item.data), batch_bytes(0, 0, 1000))

    def test_items_reach_the_consumer_in_order_with_the_end_marker_last(self):
        w = opened()
        for f in frames(0, 1, 10, 64):
            w.accept_chunk(f)
        self.assertEqual(w.accept_end(SESSION, 0, 2).status, "stored")
        self.assertIsNone(w.take(), "step 0 has not arrived")
        self.assertEqual(w.missing(), (Position(0, 0), None))
        for f in frames(0, 0, 0, 64):
            w.accept_chunk(f)
        self.assertEqual([i.position for i in drain(w)], [Position(0, 0), Position(0, 1), Position(0, 2)])
        self.assertEqual(w.position, Position(1, 0))
        self.assertEqual(w.last_consumed, Position(0, 2))

    def test_duplicates_by_position_and_by_chunk_are_dropped(self):
        w = opened()
        parts = frames(0, 0, 200, 64)
        w.accept_chunk(parts[0])
        self.assertEqual(w.accept_chunk(parts[0]).status, "duplicate")
        for f in parts[1:]:
            w.accept_chunk(f)
        self.assertEqual(w.accept_chunk(parts[2]).status, "duplicate")
        w.take()
        self.assertEqual(w.accept_chunk(parts[1]).status, "duplicate")
        w.accept_end(SESSION, 0, 1)
        self.assertEqual(w.accept_end(SESSION, 0, 1).status, "duplicate")

    def test_frames_of_other_sessions_jobs_ranks_or_before_the_welcome(self):
        w = ReceiveWindow(JOB, RANK, 4, 1 << 20)
        w.begin(SESSION)
        self.assertEqual(w.accept_chunk(frames(0, 0, 5, 64)[0]).status, "ignored", "before the welcome")
        w.welcome(SESSION, Position(0, 0))
        self.assertEqual(w.accept_chunk(frames(0, 0, 5, 64, session=SESSION + 1)[0]).status, "ignored")
        self.assertEqual(w.accept_chunk(frames(0, 0, 5, 64, job="other")[0]).status, "rejected")
        self.assertEqual(w.accept_chunk(frames(0, 0, 5, 64, rank=RANK + 1)[0]).status, "rejected")
        self.assertEqual(w.accept_end(SESSION + 1, 0, 0).status, "ignored")

    def test_inconsistent_chunk_layouts_are_rejected(self):
        w = opened()
        w.accept_chunk(frames(0, 0, 200, 64)[0])
        self.assertEqual(w.accept_chunk(frames(0, 0, 200, 100)[1]).status, "rejected")
        self.assertEqual(w.accept_end(SESSION, 0, 0).status, "rejected", "an end marker where a batch is")

    def test_a_batch_over_max_batch_bytes_at_the_receive_position_is_fatal(self):
        w = opened(max_batch_bytes=100)
        self.assertEqual(w.accept_chunk(frames(0, 1, 101, 64)[0]).status, "rejected")
        outcome = w.accept_chunk(frames(0, 0, 101, 64)[0])
        self.assertEqual(outcome.status, "fatal")
        self.assertIn("101 bytes, more than max_batch_bytes (100)", outcome.why)

    def test_memory_is_bounded_by_the_window_but_the_next_item_always_finds_room(self):
        w = opened(window=2)
        for step in (3, 2):
            self.assertEqual(w.accept_chunk(frames(0, step, 10, 64)[0]).status, "stored")
        self.assertEqual(w.accept_chunk(frames(0, 4, 10, 64)[0]).status, "rejected", "beyond the window")
        self.assertEqual(w.accept_chunk(frames(0, 0, 10, 64)[0]).status, "stored", "replaces the farthest (step 3)")
        self.assertEqual(w.buffered_batches, 2)
        self.assertEqual([i.position for i in drain(w)], [Position(0, 0)])

    def test_no_nack_when_the_buffer_is_full_of_ready_items(self):
        w = opened(window=2)
        for step in (0, 1):
            w.accept_chunk(frames(0, step, 10, 64)[0])
        self.assertIsNone(w.missing())
        w.take()
        self.assertEqual(w.missing(), (Position(0, 2), None))

    def test_items_beyond_an_epochs_end_are_dropped_when_it_is_passed(self):
        w = opened()
        w.accept_chunk(frames(0, 5, 10, 64)[0])  # cannot exist if epoch 0 has 1 batch
        w.accept_chunk(frames(0, 0, 10, 64)[0])
        w.accept_end(SESSION, 0, 1)
        self.assertEqual([type(i) for i in drain(w)], [ReceivedBatch, EndOfEpoch])
        self.assertEqual(w.buffered_batches, 0)

    def test_credit_and_sessions(self):
        w = opened(window=3)
        self.assertEqual(w.granted, 3)
        w.accept_chunk(frames(0, 0, 10, 64)[0])
        w.accept_end(SESSION, 0, 1)
        drain(w)
        self.assertEqual(w.granted, 4, "end markers need no credit")
        w.accept_chunk(frames(1, 0, 10, 64)[0])
        resume, credits = w.begin(SESSION + 1)
        self.assertEqual((resume, credits, w.buffered_batches), (Position(1, 0), 3, 0))
        self.assertEqual(w.welcome(SESSION + 1, Position(0, 0))[0], "mismatch")
        self.assertEqual(w.welcome(SESSION + 1, Position(1, 0)), "ok")
        self.assertEqual(w.granted, 3)

    def test_exactly_once_in_order_through_a_lossy_duplicating_reordering_network(self):
        for seed in range(25):
            rng = random.Random(seed)
            sizes = {step: rng.choice([0, 1, 63, 64, 65, 300]) for step in range(12)}
            epochs = [(e, [sizes[(e * 5 + s) % 12] for s in range(rng.randint(0, 6))]) for e in range(3)]
            w = opened(window=rng.randint(1, 4))
            delivered = []
            expected = [(e, s) for e, steps in epochs for s in range(len(steps) + 1)]
            for _ in range(400):
                if len(delivered) == len(expected):
                    break
                # The loader (re)sends everything from the receive position on, in a shuffled burst.
                burst = []
                for e, steps in epochs:
                    for s, size in enumerate(steps):
                        if Position(e, s) >= w.receive_position:
                            burst.extend(("chunk", f) for f in frames(e, s, size, 64))
                    if Position(e, len(steps)) >= w.receive_position:
                        burst.append(("end", (e, len(steps))))
                burst = [m for m in burst if rng.random() > 0.3] + [m for m in burst if rng.random() < 0.2]
                rng.shuffle(burst)
                for kind, m in burst:
                    if kind == "chunk":
                        w.accept_chunk(m)
                    else:
                        w.accept_end(SESSION, *m)
                    if rng.random() < 0.3:
                        delivered.extend(drain(w))
                delivered.extend(drain(w))
            self.assertEqual([tuple(i.position) for i in delivered], expected, f"seed {seed}")
            for item in delivered:
                if isinstance(item, ReceivedBatch):
                    self.assertEqual(bytes(item.data), batch_bytes(item.epoch, item.step, len(item.data)))
            self.assertLessEqual(w.buffered_batches, w.window)


if __name__ == "__main__":
    unittest.main()

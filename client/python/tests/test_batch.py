"""Decoding delivered batches (docs/wire-format.md) with the reference safetensors package."""

import json
import struct
import unittest

import numpy as np
from safetensors.numpy import save

from shardline.batch import decode_batch
from shardline.errors import FormatError


def blob(metadata=None, **tensors):
    meta = {"wire_version": "1", "job": "mnist", "epoch": "3", "rank": "1", "step": "42", "sample_ids": "[17,3]"}
    meta.update(metadata or {})
    tensors = tensors or {"image": np.arange(8, dtype=np.uint8).reshape(2, 4), "label": np.array([5, 6], dtype=np.int64)}
    return save(tensors, metadata={k: v for k, v in meta.items() if v is not None})


class BatchTest(unittest.TestCase):
    def test_decodes_tensors_and_metadata(self):
        batch = decode_batch(blob({"dataset": "s3://x"}), expect=("mnist", 1, 3, 42))
        self.assertEqual((batch.job, batch.rank, batch.epoch, batch.step, batch.sample_ids), ("mnist", 1, 3, 42, [17, 3]))
        np.testing.assert_array_equal(batch.tensors["image"], np.arange(8, dtype=np.uint8).reshape(2, 4))
        self.assertEqual(batch.tensors["label"].dtype, np.int64)
        self.assertEqual(batch.extra, {"dataset": "s3://x"})

    def test_metadata_naming_another_place_in_the_stream_is_refused(self):
        with self.assertRaises(FormatError) as caught:
            decode_batch(blob(), expect=("mnist", 1, 3, 41))
        self.assertIn("delivered as job 'mnist' rank 1 epoch 3 step 41", str(caught.exception))

    def test_bad_metadata_names_the_field(self):
        cases = {
            "wire_version": {"wire_version": "2"},
            "epoch": {"epoch": "03"},
            "step": {"step": "-1"},
            "rank": {"rank": None},
            "sample_ids": {"sample_ids": "[1,-2]"},
            "job": {"job": ""},
        }
        for field, meta in cases.items():
            with self.assertRaises(FormatError, msg=field) as caught:
                decode_batch(blob(meta))
            self.assertIn(field, str(caught.exception))

    def test_a_first_dimension_other_than_the_sample_count_is_refused(self):
        with self.assertRaises(FormatError) as caught:
            decode_batch(blob({"sample_ids": "[1]"}))
        self.assertIn("first dimension 2", str(caught.exception))

    def test_truncated_or_garbage_bytes_are_format_errors(self):
        good = blob()
        for n in (0, 7, 8, 20, len(good) - 1):
            with self.assertRaises(FormatError, msg=n):
                decode_batch(good[:n])
        header = json.dumps({"__metadata__": {"wire_version": "1"}}).encode()
        with self.assertRaises(FormatError):
            decode_batch(struct.pack("<Q", 2**63) + header)


if __name__ == "__main__":
    unittest.main()

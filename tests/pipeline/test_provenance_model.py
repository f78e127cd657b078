"""The CNN's provenance names the exact weight file."""

import hashlib

from spinemetrics.pipeline import _cnn_model_info
from spinemetrics.segment.inference import DEFAULT_WEIGHTS


def test_model_info_carries_weight_hash_and_training_meta():
    info = _cnn_model_info("cpu")
    assert info["weights_sha256"] == hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()
    assert info["model"] == "spinemetrics CNN" and info["steps"] > 0

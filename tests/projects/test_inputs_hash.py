"""A take's inputs hash stays the SHA-256 of the canonical JSON it always was (sorted keys, no
spaces, UTF-8 as is): hashes stored before must still match the same inputs."""

import hashlib
import json

from projects.takes import inputs_hash


def test_the_hash_is_the_sha256_of_the_canonical_json():
    document = {
        "frame": {"prompt": 'Ünïcode — \u2028 and "quotes"', "camera": "low"},
        "portraits": {"12": {"name": "Mara", "take": 7}, "3": {"name": "Ode", "take": None}},
        "clip_seconds": 2.5,
        "objects": [],
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert inputs_hash(document) == hashlib.sha256(canonical.encode()).hexdigest()
    assert inputs_hash({"b": 1, "a": 2}) == inputs_hash({"a": 2, "b": 1})
    assert inputs_hash({}) == hashlib.sha256(b"{}").hexdigest()

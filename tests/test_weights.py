import json

from atlas.models.weights import file_digest


def test_digest_is_computed_once_per_file_and_remembered(tmp_path):
    weights, index = tmp_path / "w.pt", tmp_path / "digests.json"
    weights.write_bytes(b"x" * 1000)
    first = file_digest(weights, index)
    (stamp,) = json.loads(index.read_text())
    index.write_text(json.dumps({stamp: "remembered"}))
    assert file_digest(weights, index) == "remembered"  # not hashed again
    weights.write_bytes(b"y" * 1001)
    assert file_digest(weights, index) not in (first, "remembered")

"""Every vector through every client x server pair, every server alone, and every transducer alone."""

from __future__ import annotations

import pytest

from harness.bytes_diff import assert_same_bytes
from harness.fuzz import dense_stream
from harness.oracle import expected_u
from harness.wire import exchange

SMALL_INPUT = 4096  # below this, the transducer is also fed one byte per read


@pytest.mark.clause("T-1", "C-3", "C-4")
def test_client_server_pair(backend, servers, client, server, vector) -> None:
    host, port = servers.get(server).address
    result = backend.run(client, "client", "--host", host, "--port", str(port), stdin=vector.input)
    assert_same_bytes(result.stdout, vector.expected)
    assert result.returncode == 0, result.stderr


@pytest.mark.clause("T-1", "N-2")
def test_server_alone(servers, server, vector) -> None:
    actual = exchange(servers.get(server).address, vector.input)
    assert_same_bytes(actual, vector.expected)


@pytest.mark.clause("T-5")
def test_server_under_turkish_locale(servers, server, vector) -> None:
    actual = exchange(servers.get(server, turkish=True).address, vector.input)
    assert_same_bytes(actual, vector.expected)


@pytest.mark.clause("X-2", "D-1")
def test_transducer_alone(backend, implementation, vector) -> None:
    chunk = 1 if len(vector.input) <= SMALL_INPUT else 65536
    result = backend.run(implementation, "transform", "--chunk-size", str(chunk), stdin=vector.input)
    assert_same_bytes(result.stdout, vector.expected)
    assert result.returncode == 0, result.stderr


# Around the fast paths' words: Java's from reads of 10 bytes on, C#'s 8-byte words, Rust's 64-byte blocks.
TRANSDUCER_READ_SIZES = [11, 17, 24, 65, 127]
DENSE_STREAM_BYTES = 256 * 1024  # about 15,000 reads of 17 bytes: rare alignments occur many times


@pytest.mark.clause("X-2", "D-1")
@pytest.mark.parametrize("chunk", TRANSDUCER_READ_SIZES)
def test_transducer_at_read_sizes(backend, implementation, chunk) -> None:
    data = dense_stream(DENSE_STREAM_BYTES, seed=0)
    result = backend.run(implementation, "transform", "--chunk-size", str(chunk), stdin=data)
    assert_same_bytes(result.stdout, expected_u(data))
    assert result.returncode == 0, result.stderr


@pytest.mark.clause("C-2", "T-5")
@pytest.mark.parametrize("turkish", [False, True], ids=["C.UTF-8", "tr_TR.UTF-8"])
def test_messages_mode_pair(backend, servers, client, server, turkish) -> None:
    host, port = servers.get(server).address
    env = client.turkish_environment() if turkish else None
    result = backend.run(
        client, "client", "--host", host, "--port", str(port), "Hello World", "straße", "istanbul", env=env
    )
    expected = b"HELLO WORLD\nSTRASSE\nISTANBUL\n"
    assert_same_bytes(result.stdout, expected)
    assert result.returncode == 0, result.stderr

"""Replay a recorded transcript (harness/proxy.py) against one implementation alone, with no other runtime.

    python3 -m harness.replay TRANSCRIPT.json --against client --implementation java
    python3 -m harness.replay results.json --cell 'NODEID' --against server --implementation csharp

Against a client: a one-shot server here plays what the proxy did on the client's leg (its bytes, FIN or RST,
at their recorded times) while the client under test sends the recorded stdin; the client's exit code, stderr
and stdout are then judged by the condition's expectation (harness/proxy.py client_outcome_problems).
Against a server: the server under test is started, and a connection here plays what the proxy did on the
server's leg; what the server sent back is compared with what it sent in the recording.
Exit status: 0 when the implementation now behaves as the spec expects (client) or as recorded (server), 1 when
it does not, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .backends.base import BASE_ENV
from .backends.local import ServerProcess
from .proxy import client_outcome_problems
from .registry import load_registry


def read_json(path: Path) -> dict:
    """A JSON file, gzip-compressed when its name ends in .gz (committed transcripts are)."""
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8") as file:
        return json.load(file)


def load_transcript(path: Path, cell: str | None) -> dict:
    """A transcript file, or the transcript of one cell of a results.json (harness/plugins/reporting.py)."""
    document = read_json(path)
    if cell is None:
        if document.get("format") != "upper-echo-transcript/1":
            raise SystemExit(f"error: {path} is not a transcript; for a results.json, name the cell with --cell")
        return document
    for test in document.get("tests", []):
        if test.get("nodeid") == cell or test.get("nodeid", "").endswith(cell):
            transcript = test.get("transcript") or test.get("evidence", {}).get("transcript")
            if transcript:
                return transcript
    raise SystemExit(f"error: no transcript for a cell {cell!r} in {path}")


def played(transcript: dict, leg: str) -> list[dict]:
    """What the proxy itself did on one leg: the peer this replay stands in for."""
    return [event for event in transcript["events"] if event["leg"] == leg and event["by"] == "proxy"]


def play(sock: socket.socket, events: list[dict]) -> None:
    """Send the events' bytes, FIN and RST at their recorded offsets from now."""
    started = time.monotonic()
    for event in events:
        delay = event["t"] - (time.monotonic() - started)
        if delay > 0:
            time.sleep(delay)
        try:
            if event["kind"] == "data":
                sock.sendall(bytes.fromhex(event["hex"]))
            elif event["kind"] == "fin":
                sock.shutdown(socket.SHUT_WR)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                sock.close()
                return
        except OSError:
            return


def drain(sock: socket.socket, into: bytearray) -> None:
    try:
        while data := sock.recv(65536):
            into += data
    except OSError:
        pass


class PlayedPeer:
    """A one-shot server that plays what the proxy did on a transcript's client leg, then holds the connection
    open until the client under test is done: `with PlayedPeer(host, transcript) as peer:` run the client
    against (host, peer.port)."""

    def __init__(self, host: str, transcript: dict) -> None:
        self.events = played(transcript, "client")
        self.listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.listener.bind((host, 0))
        self.listener.listen(1)
        self.client_done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def __enter__(self) -> PlayedPeer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.client_done.set()
        self.listener.close()
        self.thread.join(5)

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return  # the client never connected
        threading.Thread(target=drain, args=(conn, bytearray()), daemon=True).start()
        play(conn, self.events)
        self.client_done.wait(120)  # nothing more was recorded on this leg: hold it as the proxy did
        if conn.fileno() != -1:
            conn.close()


def replay_against_client(transcript: dict, command: list[str]) -> int:
    stdin = bytes.fromhex(transcript.get("stdin_hex", ""))
    with PlayedPeer("127.0.0.1", transcript) as peer:
        argv = [*command, "client", "--host", "127.0.0.1", "--port", str(peer.port), *transcript.get("client_args", [])]
        result = subprocess.run(argv, input=stdin, capture_output=True, timeout=120)
    problems = client_outcome_problems(transcript["condition"], stdin, result.returncode, result.stdout, result.stderr)
    print(f"client exit {result.returncode}; stdout {len(result.stdout)} bytes; stderr {result.stderr!r}")
    print("\n".join(f"problem: {problem}" for problem in problems) or f"as {transcript['condition']} expects")
    return 1 if problems else 0


def replay_against_server(transcript: dict, command: list[str], log_dir: Path) -> int:
    recorded = b"".join(
        bytes.fromhex(e["hex"])
        for e in transcript["events"]
        if e["leg"] == "server" and e["by"] == "server" and e["kind"] == "data"
    )
    server = ServerProcess([*command, "server", "--port", "0"], {**os.environ, **BASE_ENV}, log_dir)
    try:
        received = bytearray()
        with socket.create_connection(server.address, timeout=30) as sock:
            reader = threading.Thread(target=drain, args=(sock, received), daemon=True)
            reader.start()
            play(sock, played(transcript, "server"))
            reader.join(30)
    finally:
        server.stop()
    log = server.log_lines()
    print(f"server sent {len(received)} bytes (recorded: {len(recorded)}); its log: {log}")
    if bytes(received) != recorded:
        print("problem: the server's answer differs from the recording")
        return 1
    print("as recorded")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m harness.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a transcript JSON file, or a results.json with --cell")
    parser.add_argument("--cell", help="the failing cell's node id (or its end) in a results.json")
    parser.add_argument("--against", choices=["client", "server"], required=True, help="which side to replay")
    parser.add_argument("--implementation", required=True, help="a name from the registry")
    parser.add_argument("--registry", type=Path, help="a registry other than implementations.toml")
    args = parser.parse_args(argv)
    registry = load_registry(args.registry) if args.registry else load_registry()
    if args.implementation not in registry:
        parser.error(f"no implementation {args.implementation!r} in the registry ({', '.join(registry)})")
    implementation = registry[args.implementation]
    built = subprocess.run(implementation.build_command, capture_output=True)
    if built.returncode != 0:
        print(
            f"error: {implementation.name}: bin/build failed: {built.stderr.decode(errors='replace')}", file=sys.stderr
        )
        return 1
    transcript = load_transcript(args.source, args.cell)
    if args.against == "client":
        return replay_against_client(transcript, implementation.command)
    with tempfile.TemporaryDirectory(prefix="upper-echo-replay-") as log_dir:
        return replay_against_server(transcript, implementation.command, Path(log_dir))


if __name__ == "__main__":
    sys.exit(main())

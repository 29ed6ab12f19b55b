"""A python-osc client in a process of its own, for the OSC tests: `python osc_peer.py`.

Reads one JSON request a line on stdin, {"port": P, "address": "/antiphon/temp", "args": [0.8]},
sends it to 127.0.0.1:P ({"port": P, "many": [[address, args], ...]}: each, back to back),
then `/antiphon/ping` as a fence (the server answers in order), then `/antiphon/status`;
prints one JSON line: {"replies": [[address, args...], ...] (what the command answered),
"settings": {key: value}, "state": STATE, "status": the status lines}.
"""
from __future__ import annotations

import json
import sys

from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient


def until(client, last: str) -> list[list]:
    """Messages received until one at `last` (included); 10 s without one is an error."""
    got = []
    while True:
        data = client.receive(10.0)
        if not data:
            raise SystemExit(f"no reply ending in {last} within 10 s; got {got}")
        msg = OscMessage(data)
        got.append([msg.address, *msg.params])
        if msg.address == last:
            return got


def request(client, req: dict) -> dict:
    for address, args in req.get("many") or [(req["address"], req.get("args", []))]:
        client.send_message(address, args)
    client.send_message("/antiphon/ping", [])
    replies = until(client, "/antiphon/pong")[:-1]
    client.send_message("/antiphon/status", [])
    status = until(client, "/antiphon/state")
    settings = {m[1]: m[2] for m in status if m[0] == "/antiphon/setting"}
    return {"replies": replies, "settings": settings, "state": status[-1][1],
            "status": [m[1] for m in status if m[0] == "/antiphon/reply"]}


def main() -> None:
    clients: dict[int, SimpleUDPClient] = {}
    for line in sys.stdin:
        req = json.loads(line)
        port = req["port"]
        client = clients.setdefault(port, SimpleUDPClient("127.0.0.1", port))
        print(json.dumps(request(client, req)), flush=True)


if __name__ == "__main__":
    main()

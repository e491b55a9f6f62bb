"""Ask one DNS server for a name's A records and print them; exit 1 if there are none.

    dnsquery.py SERVER NAME

The test cluster's CoreDNS has no upstream, and the machine has no dig: this is the readiness
probe up.sh waits on.
"""

from __future__ import annotations

import secrets
import socket
import struct
import sys


def query(name: str) -> tuple[int, bytes]:
    ident = secrets.randbits(16)
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)  # recursion desired, 1 question
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return ident, header + qname + struct.pack("!HH", 1, 1)  # type A, class IN


def skip_name(msg: bytes, pos: int) -> int:
    while msg[pos]:
        if msg[pos] & 0xC0 == 0xC0:  # compression pointer ends the name
            return pos + 2
        pos += msg[pos] + 1
    return pos + 1


def a_records(msg: bytes, ident: int) -> list[str]:
    got_id, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    if got_id != ident or flags & 0x000F:
        return []
    pos = 12
    for _ in range(qd):
        pos = skip_name(msg, pos) + 4
    found = []
    for _ in range(an):
        pos = skip_name(msg, pos)
        rtype, _, _, length = struct.unpack("!HHIH", msg[pos : pos + 10])
        pos += 10
        if rtype == 1 and length == 4:
            found.append(socket.inet_ntoa(msg[pos : pos + 4]))
        pos += length
    return found


def main(argv: list[str]) -> int:
    server, name = argv
    ident, packet = query(name)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        try:
            sock.sendto(packet, (server, 53))
            reply = sock.recv(4096)
        except OSError as exc:
            print(f"{server}: {exc}", file=sys.stderr)
            return 1
    found = a_records(reply, ident)
    print(" ".join(found))
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

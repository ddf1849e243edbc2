#!/usr/bin/env python3
"""A tiny authoritative DNS responder for the demo (UDP and TCP on one address).

Answers A queries for the names given as NAME=IP arguments, NXDOMAIN otherwise. It only
ever binds to the address it is told to, inside the demo's own network namespace.
"""
import socket
import socketserver
import struct
import sys
import threading


def parse_qname(msg, off):
    labels = []
    while True:
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels).lower(), off
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


def answer(query, table):
    qid, _flags, qd = struct.unpack("!HHH", query[:6])
    name, off = parse_qname(query, 12)
    qtype, _qclass = struct.unpack("!HH", query[off:off + 4])
    question = query[12:off + 4]
    ip = table.get(name)
    if ip and qtype == 1:
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
        return struct.pack("!HHHHHH", qid, 0x8580, 1, 1, 0, 0) + question + rr
    rcode = 0 if ip else 3  # NOERROR/no data for AAAA of a known name, else NXDOMAIN
    return struct.pack("!HHHHHH", qid, 0x8580 | rcode, 1, 0, 0, 0) + question


def main():
    addr = sys.argv[1]
    table = dict(a.split("=", 1) for a in sys.argv[2:])

    class Udp(socketserver.BaseRequestHandler):
        def handle(self):
            data, sock = self.request
            sock.sendto(answer(data, table), self.client_address)

    class Tcp(socketserver.BaseRequestHandler):
        def handle(self):
            n = struct.unpack("!H", self.request.recv(2))[0]
            resp = answer(self.request.recv(n), table)
            self.request.sendall(struct.pack("!H", len(resp)) + resp)

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    tcp = socketserver.ThreadingTCPServer((addr, 53), Tcp)
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    socketserver.UDPServer((addr, 53), Udp).serve_forever()


if __name__ == "__main__":
    main()

"""The seam as a compromised session process sees it.

The test build's master (SEKISHO_TEST_HOOKS, `make asan`) answers SIGUSR2
by making one more session channel: it hands the back side its end the way
it does for a session process, and sends the other end to the datagram
socket named by SEKISHO_TEST_CHANNEL (conftest's Daemon sets it). A
SeamChannel speaks src/core/msg.h on it: a 16-byte header (u32 type, u32
length, u64 request id), then fields (u32/u64/i64 in host order; a string
as u32 length + bytes + NUL, or u32 0xffffffff for NULL).

Nothing here trusts the back side either: every read is bounded in time.
"""
import os
import select
import signal
import socket
import struct
import time

HDR = struct.Struct("=IIQ")
MSG_MAX_LEN = 64 * 1024
BE_FAIL = 0xffff


def be_type(name):
    """The number of a request type, read from be_proto.h itself so the
    test follows the enum."""
    return _proto_enum()[name]


_enum_cache = None


def _proto_enum():
    global _enum_cache
    if _enum_cache is None:
        import re
        from pathlib import Path
        text = (Path(__file__).resolve().parents[2] / "src" / "core" /
                "be_proto.h").read_text()
        body = re.search(r"enum be_type \{(.*?)\};", text, re.S).group(1)
        # comments first: one may hold a comma
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
        values, n = {}, 0
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            if "=" in item:
                name, v = (x.strip() for x in item.split("=", 1))
                n = int(v, 0)
            else:
                name = item
            values[name] = n
            n += 1
        _enum_cache = values
    return _enum_cache


class Fields:
    """Build a message's fields."""

    def __init__(self):
        self.b = bytearray()

    def u32(self, v):
        self.b += struct.pack("=I", v & 0xffffffff)
        return self

    def u64(self, v):
        self.b += struct.pack("=Q", v & 0xffffffffffffffff)
        return self

    def i64(self, v):
        self.b += struct.pack("=q", v)
        return self

    def str(self, s):
        if s is None:
            return self.u32(0xffffffff)
        if isinstance(s, str):
            s = s.encode()
        self.b += struct.pack("=I", len(s)) + s + b"\0"
        return self


class Reply:
    """Read a reply's fields in order."""

    def __init__(self, type_, id_, body, fd=None):
        self.type, self.id, self.body, self.pos, self.fd = \
            type_, id_, body, 0, fd

    def _take(self, fmt):
        v = struct.unpack_from(fmt, self.body, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def u32(self):
        return self._take("=I")

    def u64(self):
        return self._take("=Q")

    def i64(self):
        return self._take("=q")

    def str(self):
        n = self.u32()
        if n == 0xffffffff:
            return None
        s = bytes(self.body[self.pos:self.pos + n])
        self.pos += n + 1
        return s.decode("utf-8", "replace")

    @property
    def failed(self):
        return self.type == BE_FAIL


class SeamChannel:
    """One back-side channel obtained through the test hook."""

    def __init__(self, daemon, timeout=10.0):
        path = daemon.dir / "test-channel.sock"
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            rx.bind(str(path))
            os.chmod(path, 0o600)
            rx.settimeout(timeout)
            os.kill(daemon.proc.pid, signal.SIGUSR2)
            _, fds, _, _ = socket.recv_fds(rx, 16, 1)
        finally:
            rx.close()
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        assert len(fds) == 1, "the test hook sent no channel"
        self.sock = socket.socket(fileno=fds[0])
        self.sock.setblocking(False)
        self.next_id = 1

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data, fds=()):
        """Send one datagram as it is; False if the socket is full."""
        try:
            if fds:
                socket.send_fds(self.sock, [bytes(data)], list(fds))
            else:
                self.sock.send(bytes(data))
            return True
        except BlockingIOError:
            return False

    def send(self, type_, fields=None, id_=None, fds=()):
        """Send a well-framed request; returns its id."""
        if isinstance(type_, str):
            type_ = be_type(type_)
        if id_ is None:
            id_ = self.next_id
            self.next_id += 1
        body = bytes(fields.b) if fields is not None else b""
        data = HDR.pack(type_, HDR.size + len(body), id_) + body
        deadline = time.monotonic() + 10
        while not self.send_raw(data, fds):
            assert time.monotonic() < deadline, "channel full for 10 s"
            select.select([], [self.sock], [], 0.1)
        return id_

    def recv(self, timeout=10.0):
        """The next reply, None on timeout; raises EOFError when the back
        side closed the channel."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, MSG_MAX_LEN,
                                                  4)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                raise EOFError("back side reset the channel")
            if not data:
                raise EOFError("back side closed the channel")
            t, n, i = HDR.unpack_from(data)
            return Reply(t, i, data[HDR.size:n], fds[0] if fds else None)

    def request(self, type_, fields=None, timeout=10.0):
        """Send and wait for the reply to that request."""
        id_ = self.send(type_, fields)
        deadline = time.monotonic() + timeout
        while True:
            rep = self.recv(max(0.0, deadline - time.monotonic()))
            if rep is None:
                return None
            if rep.id == id_:
                return rep
            if rep.fd is not None:
                os.close(rep.fd)

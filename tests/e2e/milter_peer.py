"""A test milter on Sendmail's real libmilter (Debian's python3-milter):
`python3 milter_peer.py PORT OUTDIR` listens on 127.0.0.1:PORT. What it
does with a message is chosen by the words of its Subject (see eom), or a
sender with "rcpt-reject" (refused at RCPT); for every message that reaches end of message it writes
OUTDIR/<queue id>.json with the macros and events it saw.

Also misbehaving peers, written with raw sockets (no libmilter): `start_bad`
gives a listener that never answers, answers garbage, or an oversize
packet."""
import json
import os
import socket
import subprocess
import sys
import threading
import time

MACROS = ("i", "j", "{daemon_name}", "{if_name}", "{if_addr}",
          "{auth_authen}", "{auth_type}", "{client_addr}", "{client_name}",
          "{client_port}", "{tls_version}", "{cipher}", "{mail_addr}",
          "{rcpt_addr}", "_")


def _milter_main(port, outdir):
    import Milter

    conns = [0]

    class Peer(Milter.Base):
        def __init__(self):
            # one object per connection: "conn" numbers the connections
            # this process accepted, "seq" the messages on this one
            conns[0] += 1
            self.conn = conns[0]
            self.seq = 0
            self.ev = {"headers": [], "rcpts": [], "body": b"",
                       "macros": {}}

        def _macros(self):
            for m in MACROS:
                v = self.getsymval(m)
                if v is not None:
                    self.ev["macros"][m] = v

        def connect(self, hostname, family, hostaddr):
            self.ev["connect"] = [hostname, str(hostaddr)]
            self._macros()
            return Milter.CONTINUE

        def hello(self, helo):
            self.ev["helo"] = helo
            self._macros()
            return Milter.CONTINUE

        def envfrom(self, f, *args):
            # a new message (on a kept connection, after SMFIC_ABORT):
            # what the last one said is forgotten, connect and helo kept
            self.seq += 1
            for k in ("headers", "rcpts"):
                self.ev[k] = []
            self.ev["body"] = b""
            self.ev.pop("subject", None)
            self.ev["conn"], self.ev["seq"] = self.conn, self.seq
            self.ev["from"] = f
            self._macros()
            return Milter.CONTINUE

        def envrcpt(self, to, *args):
            self.ev["rcpts"].append(to)
            self._macros()
            if "rcpt-reject" in self.ev.get("from", ""):
                # a refusal before the end of message, at RCPT
                self.setreply("550", "5.1.1", "Recipient refused by the "
                              "test filter")
                return Milter.REJECT
            return Milter.CONTINUE

        def header(self, name, value):
            self.ev["headers"].append([name, value])
            if name.lower() == "subject":
                self.ev["subject"] = value.strip()
            return Milter.CONTINUE

        def eoh(self):
            self._macros()
            return Milter.CONTINUE

        def body(self, chunk):
            self.ev["body"] += chunk
            return Milter.CONTINUE

        def eom(self):
            self._macros()
            ev = dict(self.ev)
            ev["body"] = ev["body"].decode("utf-8", "replace")
            qid = self.ev["macros"].get("i", "noid")
            with open(os.path.join(outdir, qid + ".json"), "w") as f:
                json.dump(ev, f)
            words = self.ev.get("subject", "").split()
            r = Milter.CONTINUE
            for w in words:
                if w == "addheader":
                    self.addheader("X-Filter-Added", "yes, by the test")
                elif w == "insheader":
                    self.addheader("X-Filter-Inserted", "at the top", 0)
                elif w == "chgheader":
                    self.chgheader("X-Change-Me", 1, "changed by filter")
                elif w == "delheader":
                    self.chgheader("X-Delete-Me", 1, "")
                elif w == "chgreceived":
                    self.chgheader("Received", 1, "forged")
                elif w == "replbody":
                    self.replacebody(b"the filter's new body\r\n"
                                     b"second line\r\n")
                elif w == "chgfrom":
                    self.chgfrom("<changed-sender@example.org>")
                elif w == "addrcpt":
                    self.addrcpt("<alice@example.jp>")
                elif w == "delrcpt":
                    self.delrcpt("<bob@example.jp>")
                elif w == "quarantine":
                    self.quarantine("test quarantine reason")
                elif w == "reject":
                    self.setreply("550", "5.7.1", "Custom rejection by "
                                  "the test filter")
                    r = Milter.REJECT
                elif w == "plainreject":
                    r = Milter.REJECT
                elif w == "tempfail":
                    self.setreply("451", "4.7.1", "Custom deferral by "
                                  "the test filter")
                    r = Milter.TEMPFAIL
                elif w == "discard":
                    r = Milter.DISCARD
                elif w == "accept":
                    r = Milter.ACCEPT
            return r

    Milter.factory = Peer
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGBODY | Milter.ADDRCPT |
                     Milter.DELRCPT | Milter.CHGHDRS | Milter.QUARANTINE |
                     Milter.CHGFROM)
    where = f"inet:{port}@127.0.0.1"
    if port.startswith("/"):
        where = f"unix:{port}"
        os.umask(0)     # the daemon's back side (another user) connects
    Milter.runmilter("sekisho-test", where, 60)


def wait_port(port, proc=None, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"milter exited {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"milter port {port} never accepted")


def start(port, outdir):
    """The pymilter peer as a process, on 127.0.0.1:port, or on the unix
    socket port when it is a path; the caller terminates it."""
    proc = subprocess.Popen(["/usr/bin/python3", __file__, str(port),
                             str(outdir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if str(port).startswith("/"):
        deadline = time.monotonic() + 20
        while not os.path.exists(str(port)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"milter socket {port} never appeared")
            time.sleep(0.05)
    else:
        wait_port(port, proc)
    return proc


class BadPeer:
    """mode: "hang" (reads, never answers), "garbage" (an unknown reply to
    the option negotiation), "oversize" (a packet length of 4 GiB after a
    good negotiation), "midgarbage" (good negotiation, garbage at
    connect); and filters that serve one message well, then spoil the
    connection kept for the session's next one: "closenext" (closes it
    when the next message begins on it, without a word), "idlegarbage"
    (sends garbage while it is idle), "idleclose" (closes it at once);
    "good" speaks well throughout. `accepted` counts connections,
    `messages` the ends of message answered, `quits` the SMFIC_QUITs."""

    def __init__(self, port, mode):
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.conns = []
        self.accepted = 0
        self.messages = 0
        self.quits = 0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        optneg = (b"\0\0\0\x0dO" + (6).to_bytes(4, "big") +
                  (0x1ff).to_bytes(4, "big") + (0).to_bytes(4, "big"))
        try:
            first = c.recv(65536)
            if not first or self.mode == "hang":
                while c.recv(65536):
                    pass
                return
            if self.mode == "garbage":
                c.sendall(b"\0\0\0\x05Zjunk")
            elif self.mode == "oversize":
                c.sendall(optneg)
                c.recv(65536)
                c.sendall(b"\xff\xff\xff\xffc" + b"x" * 1000)
            elif self.mode in ("inject", "smuggle", "progress", "closenext",
                               "idlegarbage", "idleclose", "good"):
                self._speak(c, first, optneg)
                return
            elif self.mode == "midgarbage":
                c.sendall(optneg)
                c.recv(65536)
                c.sendall(b"\0\0\0\x03y20")
            while c.recv(65536):
                pass
        except OSError:
            pass

    def _speak(self, c, first, optneg):
        """Speak the protocol well, answer 'continue' to every command,
        and at the end of message send the hostile packet of the mode:
        "inject" an added header whose value starts a new field, "smuggle"
        a reply code that carries a second SMTP reply line, "progress"
        an endless stream of SMFIR_PROGRESS."""
        buf = first
        ended = False
        while True:
            if ended and buf and self.mode == "closenext":
                c.close()       # the next message begins: no answer
                return
            while len(buf) >= 4:
                n = int.from_bytes(buf[:4], "big")
                if len(buf) < 4 + n:
                    break
                cmd = buf[4:5]
                buf = buf[4 + n:]
                if cmd == b"O":
                    c.sendall(optneg)
                elif cmd == b"D":
                    pass                    # macros: no reply
                elif cmd == b"E" and self.mode in ("closenext",
                                                   "idlegarbage",
                                                   "idleclose", "good"):
                    c.sendall(b"\0\0\0\x01c")
                    self.messages += 1
                    ended = True
                    if self.mode == "idlegarbage":
                        time.sleep(0.2)
                        c.sendall(b"\0\0\0\x05Zjunk")
                    elif self.mode == "idleclose":
                        c.close()
                        return
                elif cmd == b"E":
                    if self.mode == "progress":
                        # "still working", forever
                        while True:
                            c.sendall(b"\0\0\0\x01p")
                            time.sleep(0.3)
                    if self.mode == "inject":
                        v = b"X-Hostile\0ok\r\nBcc: victim@example.org\0"
                        c.sendall((len(v) + 1).to_bytes(4, "big") + b"h" +
                                  v)
                        c.sendall(b"\0\0\0\x01c")
                    else:
                        v = b"550 5.7.1 no\r\n250 2.0.0 Ok: queued\0"
                        c.sendall((len(v) + 1).to_bytes(4, "big") + b"y" +
                                  v)
                elif cmd == b"Q":
                    self.quits += 1
                elif cmd == b"A":
                    pass
                else:
                    c.sendall(b"\0\0\0\x01c")
            more = c.recv(65536)
            if not more:
                return
            buf += more

    def close(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


if __name__ == "__main__":
    _milter_main(sys.argv[1], sys.argv[2])

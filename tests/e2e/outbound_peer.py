"""A scripted SMTP peer for the outbound tests: an asyncio server on
127.0.0.1 in a background thread. `script(attempt, rcpt)` decides the RCPT
reply and `data_reply(attempt, rcpts)` the reply after the data; every
complete transaction is recorded in `messages` (sender, rcpts, data).

`starttls(n)` (n: STARTTLS commands seen before) answers STARTTLS: a reply
line, or "break" for a 220 followed by bytes that are no TLS record and a
close (a broken TLS stack), or "tls" for a 220 and a real handshake with
tls_context; add "STARTTLS" to ehlo_lines to offer it. A data reply
"!close:TEXT" sends TEXT (no line end) and closes: a connection that ends
in the middle of a reply; "!abort:TEXT" the same without a TLS
close_notify (the TCP connection just ends). `sessions` holds each connection's
commands."""
import asyncio
import threading
import time


class ScriptedPeer:
    def __init__(self, rcpt_reply=None, data_reply=None, data_delay=0.0,
                 ehlo_lines=("PIPELINING", "8BITMIME", "SIZE 10000000",
                             "ENHANCEDSTATUSCODES"), host="127.0.0.1",
                 port=0, starttls=None, tls_context=None):
        self.rcpt_reply = rcpt_reply or (lambda n, rcpt: "250 2.1.5 Ok")
        self.data_reply = data_reply or (lambda n, rcpts: "250 2.0.0 Ok")
        self.data_delay = data_delay
        self.ehlo_lines = list(ehlo_lines)
        self.host = host
        self.port = port
        self.messages = []          # (sender, [rcpts], data) accepted
        self.transactions = 0       # DATA finished, whatever the reply
        self.data_started = 0
        self.commands = []
        self.sessions = []          # [commands] per connection
        self.starttls = starttls
        self.tls_context = tls_context
        self.starttls_count = 0
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._session, self.host, self.port))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _session(self, reader, writer):
        def send(line):
            writer.write(line.encode() + b"\r\n")

        send("220 peer.test ESMTP scripted")
        sender, rcpts = None, []
        session = []
        with self.lock:
            self.sessions.append(session)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                cmd = line.decode("utf-8", "replace").rstrip("\r\n")
                with self.lock:
                    self.commands.append(cmd)
                    session.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "LHLO"):
                    lines = ["peer.test"] + self.ehlo_lines
                    for i, ln in enumerate(lines):
                        sep = " " if i == len(lines) - 1 else "-"
                        send(f"250{sep}{ln}")
                elif verb == "STARTTLS" and self.starttls is not None:
                    with self.lock:
                        n = self.starttls_count
                        self.starttls_count += 1
                    reply = self.starttls(n)
                    if reply == "break":
                        send("220 2.0.0 Ready to start TLS")
                        await writer.drain()
                        await reader.read(1)     # the ClientHello
                        writer.write(b"garbage, not a TLS record\r\n")
                        await writer.drain()
                        break
                    if reply == "tls":
                        send("220 2.0.0 Ready to start TLS")
                        await writer.drain()
                        await writer.start_tls(self.tls_context)
                        continue
                    send(reply)
                elif verb == "HELO":
                    send("250 peer.test")
                elif verb == "MAIL":
                    sender = cmd[10:].split(">")[0].lstrip("<")
                    rcpts = []
                    send("250 2.1.0 Ok")
                elif verb == "RCPT":
                    rcpt = cmd[8:].split(">")[0].lstrip("<")
                    with self.lock:
                        n = self.transactions
                    reply = self.rcpt_reply(n, rcpt)
                    if reply.startswith("2"):
                        rcpts.append(rcpt)
                    send(reply)
                elif verb == "DATA":
                    if not rcpts:
                        send("554 5.5.1 No valid recipients")
                        continue
                    send("354 go ahead")
                    await writer.drain()
                    with self.lock:
                        self.data_started += 1
                    data = b""
                    while True:
                        chunk = await reader.readline()
                        if not chunk:
                            return
                        if chunk == b".\r\n":
                            break
                        if chunk.startswith(b"."):
                            chunk = chunk[1:]
                        data += chunk
                    if self.data_delay:
                        await asyncio.sleep(self.data_delay)
                    with self.lock:
                        n = self.transactions
                        self.transactions += 1
                    reply = self.data_reply(n, list(rcpts))
                    if reply.startswith("!close:"):
                        writer.write(reply[7:].encode())
                        await writer.drain()
                        break
                    if reply.startswith("!abort:"):
                        writer.write(reply[7:].encode())
                        await writer.drain()
                        writer.transport.abort()
                        break
                    if reply.startswith("2"):
                        with self.lock:
                            self.messages.append((sender, list(rcpts),
                                                  data))
                    send(reply)
                    rcpts = []
                elif verb == "RSET":
                    rcpts = []
                    send("250 2.0.0 Ok")
                elif verb == "NOOP":
                    send("250 2.0.0 Ok")
                elif verb == "QUIT":
                    send("221 2.0.0 Bye")
                    await writer.drain()
                    break
                else:
                    send("502 5.5.2 Not implemented")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    def wait_messages(self, n, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        with self.lock:
            raise AssertionError(f"peer got {len(self.messages)} messages, "
                                 f"wanted {n}; commands: "
                                 f"{self.commands[-30:]}")

    def close(self):
        # Cancel the sessions still open (a daemon that keeps a connection)
        # so that no task is destroyed pending when the loop goes away.
        async def stop():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks()
                     if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()
        asyncio.run_coroutine_threadsafe(stop(), self.loop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()

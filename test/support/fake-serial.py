"""A stand-in for CloudSigma's server context on a serial port, for tests.

It opens a pseudo-terminal, prints the path of its terminal end on the first line of standard
output, and answers each request written there (`<` newline KEY newline `>`) as CloudSigma does:
the context as JSON, then EOT (0x04). Each request is logged as a line `request KEY-AS-JSON`.

Usage: fake-serial.py CONTEXT-FILE [MODE...]: one mode a request, in order, then `ok` for the rest.
  ok        the context, then EOT
  silent    no answer
  truncate  the first half of the context, then EOT
  oversize  bytes without end (no EOT), as fast as they are read
It runs until standard input closes or it is killed.
"""
import json
import os
import re
import select
import sys

EOT = b'\x04'
REQUEST = re.compile(rb'<\n(.*?)\n>', re.DOTALL)

master, terminal = os.openpty()  # the terminal end stays open here too, so the line never hangs up
os.set_blocking(master, False)
print(os.ttyname(terminal), flush=True)
with open(sys.argv[1], 'rb') as f:
    context = f.read()
modes = sys.argv[2:]

received = b''
pending = b''  # answer bytes not yet written: the terminal's input queue takes a few KiB at a time
endless = False
while True:
    writing = [master] if pending or endless else []
    readable, writable, _ = select.select([master, sys.stdin], writing, [])
    if sys.stdin in readable and not os.read(sys.stdin.fileno(), 4096):
        break
    if master in readable:
        try:
            received += os.read(master, 65536)
        except BlockingIOError:
            pass
        while (m := REQUEST.search(received)) is not None:
            received = received[m.end():]
            print('request ' + json.dumps(m.group(1).decode('utf-8', 'replace')), flush=True)
            mode = modes.pop(0) if modes else 'ok'
            if mode == 'ok':
                pending += context + EOT
            elif mode == 'truncate':
                pending += context[: len(context) // 2] + EOT
            elif mode == 'oversize':
                endless = True
            elif mode != 'silent':
                sys.exit(f'unknown mode {mode}')
    if master in writable:
        chunk = pending[:4096] if pending else b'x' * 4096
        try:
            n = os.write(master, chunk)
        except BlockingIOError:
            n = 0
        pending = pending[n:] if pending else pending

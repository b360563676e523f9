"""Runs a command on a pseudo-terminal of a given size and relays what it
prints to our stdout, byte for byte (escape sequences included).

    python3 pty-run.py COLUMNS ROWS -- CMD ARGS...

SIGINT and SIGTERM sent to this process are forwarded to the command. Exits
with the command's exit status (128 + N when a signal N killed it).
Python's standard library only: no build step, nothing to install.
"""
import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios

columns, rows = int(sys.argv[1]), int(sys.argv[2])
command = sys.argv[4:] if sys.argv[3] == "--" else sys.argv[3:]
master, slave = os.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
child = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
os.close(slave)
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda n, _frame: child.send_signal(n))
out = sys.stdout.buffer
while True:
    try:
        data = os.read(master, 65536)
    except InterruptedError:
        continue
    except OSError:  # EIO: every holder of the terminal's other side closed it
        break
    if not data:
        break
    out.write(data)
    out.flush()
code = child.wait()
sys.exit(128 - code if code < 0 else code)

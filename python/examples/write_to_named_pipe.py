"""The textbook's writer, done properly, on the npipe package: creates the FIFO
`my_pipe` in the current folder if it is missing (mode 600, exactly), waits for a
reader without an open that can hang past a timeout, sends "Hello from pid [N]"
as one line (the `lines` format, so any pid length works), and closes.

    python3 write_to_named_pipe.py [path] [--timeout SECONDS]

It talks to `npm run example:read` (examples/read_from_named_pipe.ts) as well
as to read_from_named_pipe.py.
"""

import argparse
import os
import sys

import npipe


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="my_pipe")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for a reader (default: for ever)")
    args = parser.parse_args()
    message = "Hello from pid [%d]" % os.getpid()
    try:
        with npipe.open_sender(args.path, format="lines", timeout=args.timeout) as sender:
            sender.send(message.encode())
    except npipe.NpipeError as e:
        print("%s: %s" % (e.code, e), file=sys.stderr)
        return 1
    print("I pid [%d] sent a message => %s" % (os.getpid(), message))
    return 0


if __name__ == "__main__":
    sys.exit(main())

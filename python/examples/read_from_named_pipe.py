"""The textbook's reader, done properly, on the npipe package: opens the FIFO
`my_pipe` in the current folder (creating it if it is missing, so either program
may start first), reads one whole line whatever its length (the textbook read
exactly 22 bytes, which broke with pids of other lengths), and prints it.

    python3 read_from_named_pipe.py [path] [--timeout SECONDS]

It talks to `npm run example:write` (examples/write_to_named_pipe.ts) as well
as to write_to_named_pipe.py.
"""

import argparse
import os
import sys

import npipe


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="my_pipe")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait for the message (default: for ever)")
    args = parser.parse_args()
    try:
        # keep_open=False ends the reader at the first end of file, as the textbook's does.
        with npipe.open_receiver(args.path, format="lines", keep_open=False) as receiver:
            message = receiver.receive(timeout=args.timeout)
    except npipe.NpipeError as e:
        print("%s: %s" % (e.code, e), file=sys.stderr)
        return 1
    if message is None:
        print("the writer closed %s without sending a message" % args.path, file=sys.stderr)
        return 1
    print("I pid [%d] received a message => %s" % (os.getpid(), message.decode("utf-8", "replace")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

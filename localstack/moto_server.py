"""Runs moto's server (the local AWS emulator) on 127.0.0.1.

Used by up.sh (as a daemon) and by the test harness, which passes --watch-stdin so that the
emulator exits as soon as the test process that started it goes away (its stdin pipe closes).
"""
import argparse
import os
import sys
import threading

from moto.server import ThreadedMotoServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--watch-stdin", action="store_true",
                        help="exit when standard input reaches end of file")
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("moto_server: refusing to listen on anything but loopback")

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    print(f"moto listening on http://{args.host}:{args.port}", flush=True)
    if args.watch_stdin:
        sys.stdin.read()
        os._exit(0)
    threading.Event().wait()


if __name__ == "__main__":
    main()

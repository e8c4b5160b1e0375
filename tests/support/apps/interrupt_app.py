"""A Flask app whose requests get stuck in the ways ``test_interrupt_*`` break.

- ``/``                          fast
- ``/sleep?seconds=60``          ``time.sleep``
- ``/socket?port=P``             a socket read from a server that never answers
- ``/pg?table=T``                PostgreSQL through psycopg 3: updates row 2, then
                                 waits for row 1, which the test holds locked
- ``/spin?seconds=60``           a pure-Python loop
"""

from __future__ import annotations

import os
import socket
import time

from flask import Flask, request

app = Flask(__name__)
POSTGRES = os.environ.get("INTERRUPT_APP_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@app.get("/")
def index() -> str:
    return "ok\n"


@app.get("/sleep")
def sleep() -> str:
    time.sleep(float(request.args["seconds"]))
    return "slept\n"


@app.get("/socket")
def read_socket() -> str:
    with socket.create_connection(("127.0.0.1", int(request.args["port"]))) as connection:
        return f"{len(connection.recv(1))} bytes\n"  # the partner never answers


@app.get("/pg")
def pay() -> str:
    import psycopg

    table = request.args["table"]
    with psycopg.connect(POSTGRES) as connection:  # commits on success, rolls back on any exception
        connection.execute(f"UPDATE {table} SET balance = balance - 10 WHERE id = 2")
        connection.execute(f"SELECT balance FROM {table} WHERE id = 1 FOR UPDATE")  # held by the test
    return "paid\n"


@app.get("/spin")
def spin() -> str:
    deadline = time.monotonic() + float(request.args["seconds"])
    n = 0
    while time.monotonic() < deadline:
        n += 1
    return f"{n} turns\n"

"""lipstream.server: the websocket server with a progressive preview page (`lipstream serve`).

    limits.py    ServerConfig: every limit and what it costs
    protocol.py  the message protocol as pure data and a state machine (no I/O)
    paths.py     files named by clients, confined to --root
    jobs.py      job slots with a waiting line, finished outputs kept for download
    state.py     ServerState: what the connections of one server share
    worker.py    one job as a task on the server's loop
    session.py   one websocket connection
    live_protocol.py, live.py   live sessions at /live (`lipstream live`)
    http.py      the page, output downloads, and the websocket gate
    app.py       serve(): all of it on one socket

The protocol is documented in server/PROTOCOL.md.
"""

from .app import Running, ServerThread, serve
from .limits import ServerConfig
from .state import ServerState

__all__ = ["Running", "ServerConfig", "ServerState", "ServerThread", "serve"]

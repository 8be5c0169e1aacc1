"""lipstream: streaming lip-sync at constant memory.

The package root holds the CLI, the configuration dataclasses and the error
tree; the work happens in `lipstream.stream` (decode, windows, audio, mux),
`lipstream.pipeline` (stages and the async runner), `lipstream.models`
(networks) and `lipstream.server` (websocket preview).
"""

__version__ = "0.1.0"

"""The one error tree of lipstream.

    LipstreamError                 anything lipstream raises on purpose
    ├── InputError                 the user's input or options are wrong (CLI exit 2)
    │   ├── MediaError             a file or pipe cannot be opened or decoded
    │   ├── WeightsError           a checkpoint is missing, truncated or does not match
    │   └── OutputError            the output cannot be written: read-only, full, a folder, stdout closed
    ├── PipelineError              a stage failed while running (CLI exit 1)
    ├── ReaderGone                 the reader of the output pipe closed it early (CLI exit 141)
    └── Cancelled                  the job was stopped (client gone)
        └── Interrupted            a signal stopped it (CLI exit 130 for SIGINT, 143 for SIGTERM)

Every message names the problem and the fix in one line, because the CLI
prints it as it is and the server sends it to the client.
"""

from __future__ import annotations


class LipstreamError(Exception):
    """Base of every error lipstream raises on purpose."""


class InputError(LipstreamError):
    """The user's input or options are wrong; fixing them fixes the run."""


class MediaError(InputError):
    """A media file or pipe cannot be opened, demuxed or decoded."""


class WeightsError(InputError):
    """A checkpoint is missing, truncated, corrupt or does not fit its network."""


class OutputError(InputError):
    """The output cannot be written where it was asked for; the message names the path and the fix."""


class PipelineError(LipstreamError):
    """A stage failed while the pipeline was running."""


class Cancelled(LipstreamError):
    """The job was cancelled before it finished."""


class ReaderGone(LipstreamError):
    """The program reading the output pipe closed it before the end (like SIGPIPE)."""


class Interrupted(Cancelled):
    """A signal (SIGINT, SIGTERM) stopped the job; `signum` says which."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"interrupted by signal {signum}")
        self.signum = signum

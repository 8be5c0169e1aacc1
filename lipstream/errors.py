"""The one error tree of lipstream.

    LipstreamError                 anything lipstream raises on purpose
    ├── InputError                 the user's input or options are wrong (CLI exit 2)
    │   ├── MediaError             a file or pipe cannot be opened or decoded
    │   └── WeightsError           a checkpoint is missing, truncated or does not match
    ├── PipelineError              a stage failed while running (CLI exit 1)
    └── Cancelled                  the job was stopped (Ctrl-C, client gone)

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


class PipelineError(LipstreamError):
    """A stage failed while the pipeline was running."""


class Cancelled(LipstreamError):
    """The job was cancelled before it finished."""

"""Networks and face models.

One file per network, named after its official checkpoint keys; each file
starts with its provenance and exposes a `remap(state_dict) -> state_dict`
that turns the official checkpoint layout into the module's keys.
"""

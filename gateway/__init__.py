"""The gateway: the only public HTTP door, translating API.md's contract into RPC calls."""

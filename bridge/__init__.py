"""The sidecar: wire protocol, server and client. The client side needs only numpy and pyzmq."""

if __name__ != "talkbridge.bridge":  # reached as a bare top-level `bridge` (the repository root on sys.path)
    raise ImportError(f"import talkbridge.bridge, not {__name__}: the bridge/ folder installs only as talkbridge.bridge, "
                      "and a second copy under another name would hold separate module state")

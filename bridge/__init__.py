"""The sidecar: wire protocol, server and client. The client side needs only numpy and pyzmq."""

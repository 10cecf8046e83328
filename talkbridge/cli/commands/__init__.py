"""One module per `talkbridge` sub-command; each exposes ``register(subparsers)``."""

"""The chat middleware chain: transcript, history file, images, session failover, the terminal attempt."""

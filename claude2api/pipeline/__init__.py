"""The chat middleware chain: transcript, history file, images, documents, session failover, the terminal attempt."""

"""Generated leadgate.v1 messages and stubs."""

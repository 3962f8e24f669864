// ONCRPC: RFC 5531 messages, transports, client and server runtime.

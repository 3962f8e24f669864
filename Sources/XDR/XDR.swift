// XDR: RFC 4506 encoding on ByteBuffer.

// FileService: the example file service protocol (types, client, server) on ONCRPC.

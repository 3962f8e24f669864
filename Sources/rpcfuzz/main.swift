// rpcfuzz: placeholder entry point until the tool lands.
print("rpcfuzz: not built yet")

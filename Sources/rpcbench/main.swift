// rpcbench: placeholder entry point until the tool lands.
print("rpcbench: not built yet")

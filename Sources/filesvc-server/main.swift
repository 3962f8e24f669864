// filesvc-server: placeholder entry point until the tool lands.
print("filesvc-server: not built yet")

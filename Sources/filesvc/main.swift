// filesvc: placeholder entry point until the tool lands.
print("filesvc: not built yet")

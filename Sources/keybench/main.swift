// keybench: placeholder entry point until the tool lands.
print("keybench: not built yet")

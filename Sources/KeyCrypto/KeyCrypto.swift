// KeyCrypto: Diffie-Hellman on GMP, Sun legacy DES rules, strong groups, sealed secret keys.

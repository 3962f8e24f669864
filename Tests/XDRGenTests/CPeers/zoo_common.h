/* zoo_common.h: what the C peers of the xdrgen interop test share: the fixture values
 * and the deterministic transformations both servers apply (the Swift test has the same
 * functions in TypeZooModel.swift). Trusts the rpcgen-generated typezoo.h. */
#ifndef ZOO_COMMON_H
#define ZOO_COMMON_H

#include "typezoo.h"

/* The fixture zoo (four animals, every shape arm, a note). Allocated with malloc so
 * xdr_free can release it. */
zoo *zoo_fixture(void);
/* The animals of the fixture as a freshly allocated list. */
animal_list zoo_fixture_animals(void);
/* A deep copy through XDR (encode, then decode into fresh memory). */
int zoo_copy(xdrproc_t proc, void *from, void *to, size_t size);
/* The transformations (in place). */
void zoo_transform(zoo *z);
void shape_transform(shape *s);
/* FIND: "all" gives every animal, an animal's name gives that one, anything else a
 * status of 100 + strlen(name) with the default (void) arm. */
void zoo_find(const char *name, lookup_result *result);
/* Prints "label hex-of-XDR-encoding\n". */
void print_xdr_hex(const char *label, xdrproc_t proc, void *value);

#endif

/* zoo_common.c: fixture values and transformations for the C peers of the xdrgen interop
 * test; see zoo_common.h. Mirrors TypeZooModel.swift line by line so that both sides can
 * be compared byte for byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <rpc/rpc.h>
#include "zoo_common.h"

static char *dup_string(const char *s) {
    char *d = strdup(s);
    if (d == NULL) { perror("strdup"); exit(2); }
    return d;
}

static animal *make_animal(const char *name, unsigned char tag_seed, quad_t weight, u_quad_t id,
                           const int *legs, u_int legs_len, shape figure, bool_t tame,
                           double height, float speed) {
    animal *a = calloc(1, sizeof(animal));
    a->name = dup_string(name);
    for (int i = 0; i < ZOO_TAG_SIZE; i++) a->tag[i] = (char)(unsigned char)(tag_seed + i * 17);
    a->weight = weight;
    a->id = id;
    a->legs.legs_len = legs_len;
    a->legs.legs_val = legs_len ? malloc(legs_len * sizeof(int)) : NULL;
    for (u_int i = 0; i < legs_len; i++) a->legs.legs_val[i] = legs[i];
    a->figure = figure;
    a->tame = tame;
    a->height = height;
    a->speed = speed;
    a->next = NULL;
    return a;
}

animal_list zoo_fixture_animals(void) {
    static const int legs1[] = {1, 2, 3, 4};
    static const int legs3[] = {8};
    static const int legs4[] = {-1, 2147483647};
    shape circle = {.kind = SHAPE_CIRCLE}; circle.shape_u.radius = 7;
    shape none = {.kind = SHAPE_NONE};
    shape rect = {.kind = SHAPE_RECT}; rect.shape_u.side = 123456789012LL;
    shape other = {.kind = SHAPE_OTHER}; other.shape_u.label = dup_string("horn");
    animal *a1 = make_animal("lion", 1, -5000000000LL, 0xFEDCBA9876543210ULL, legs1, 4, circle, FALSE, 1.25, 3.5f);
    animal *a2 = make_animal("snake", 0xF0, 1, 2, NULL, 0, none, TRUE, -0.5, 0.0f);
    animal *a3 = make_animal("octopus", 0, 0x7FFFFFFFFFFFFFFFLL, 0, legs3, 1, rect, TRUE, 2.0, 0.25f);
    animal *a4 = make_animal("unicorn", 0x55, -1, 0xFFFFFFFFFFFFFFFFULL, legs4, 2, other, FALSE, 1e100, -1.5f);
    a1->next = a2; a2->next = a3; a3->next = a4;
    return a1;
}

zoo *zoo_fixture(void) {
    zoo *z = calloc(1, sizeof(zoo));
    z->keeper = dup_string("Keeper of the zoo");
    z->animals = zoo_fixture_animals();
    static const unsigned char blob[] = {0xde, 0xad, 0xbe, 0xef, 0x01};
    z->blob.blob_len = sizeof(blob);
    z->blob.blob_val = malloc(sizeof(blob));
    memcpy(z->blob.blob_val, blob, sizeof(blob));
    z->counts[0] = -1; z->counts[1] = 0; z->counts[2] = 2147483647;
    z->flags = 0x80000001u;
    z->note = calloc(1, sizeof(zoo_note));
    z->note->text = dup_string("fed at noon");
    return z;
}

int zoo_copy(xdrproc_t proc, void *from, void *to, size_t size) {
    static char buffer[1 << 20];
    XDR x;
    xdrmem_create(&x, buffer, sizeof(buffer), XDR_ENCODE);
    if (!proc(&x, from, 0)) return 0;
    u_int length = xdr_getpos(&x);
    xdr_destroy(&x);
    memset(to, 0, size);
    xdrmem_create(&x, buffer, length, XDR_DECODE);
    int ok = proc(&x, to, 0);
    xdr_destroy(&x);
    return ok;
}

void shape_transform(shape *s) {
    switch (s->kind) {
    case SHAPE_CIRCLE: s->shape_u.radius *= 2; break;
    case SHAPE_SQUARE: s->shape_u.side += 1; break;
    case SHAPE_RECT: s->shape_u.side -= 1; break;
    case SHAPE_NONE:
        s->kind = SHAPE_OTHER;
        s->shape_u.label = dup_string("was none");
        break;
    default:
        free(s->shape_u.label);
        s->kind = SHAPE_NONE;
        break;
    }
}

void zoo_transform(zoo *z) {
    char *keeper = malloc(strlen(z->keeper) + 2);
    sprintf(keeper, "%s!", z->keeper);
    free(z->keeper);
    z->keeper = keeper;
    animal *reversed = NULL;
    for (animal *a = z->animals, *next; a != NULL; a = next) {
        next = a->next;
        a->weight = ~a->weight;
        a->id = ~a->id;
        a->tame = !a->tame;
        for (u_int i = 0; i < a->legs.legs_len; i++) a->legs.legs_val[i] = ~a->legs.legs_val[i];
        shape_transform(&a->figure);
        a->height *= 2;
        a->speed *= 2;
        a->next = reversed;
        reversed = a;
    }
    z->animals = reversed;
    for (u_int i = 0, j = z->blob.blob_len; i + 1 < j; i++, j--) {
        char t = z->blob.blob_val[i]; z->blob.blob_val[i] = z->blob.blob_val[j - 1]; z->blob.blob_val[j - 1] = t;
    }
    for (int i = 0; i < ZOO_COUNTS; i++) z->counts[i] = ~z->counts[i];
    z->flags = ~z->flags;
    if (z->note != NULL) {
        free(z->note->text);
        free(z->note);
        z->note = NULL;
    } else {
        z->note = calloc(1, sizeof(zoo_note));
        z->note->text = dup_string("added");
    }
}

void zoo_find(const char *name, lookup_result *result) {
    memset(result, 0, sizeof(*result));
    animal_list all = zoo_fixture_animals();
    if (strcmp(name, "all") == 0) {
        result->status = 0;
        result->lookup_result_u.animals = all;
        return;
    }
    animal *found = NULL;
    for (animal *a = all; a != NULL; a = a->next) {
        if (strcmp(a->name, name) == 0) { found = a; break; }
    }
    if (found != NULL) {
        animal_list one = NULL;
        animal_list rest = found->next;
        found->next = NULL;
        zoo_copy((xdrproc_t)xdr_animal_list, &found, &one, sizeof(one));
        found->next = rest;
        result->status = 0;
        result->lookup_result_u.animals = one;
    } else {
        result->status = 100 + (int)strlen(name);
    }
    xdr_free((xdrproc_t)xdr_animal_list, (char *)&all);
}

void print_xdr_hex(const char *label, xdrproc_t proc, void *value) {
    static char buffer[1 << 20];
    XDR x;
    xdrmem_create(&x, buffer, sizeof(buffer), XDR_ENCODE);
    if (!proc(&x, value, 0)) {
        fprintf(stderr, "cannot encode %s\n", label);
        exit(3);
    }
    u_int length = xdr_getpos(&x);
    xdr_destroy(&x);
    printf("%s ", label);
    for (u_int i = 0; i < length; i++) printf("%02x", (unsigned char)buffer[i]);
    printf("\n");
    fflush(stdout);
}

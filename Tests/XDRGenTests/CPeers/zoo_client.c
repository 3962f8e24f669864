/* zoo_client.c: the rpcgen-side client of the xdrgen interop test. Calls every TYPEZOO v1
 * procedure on 127.0.0.1:PORT (TCP, no rpcbind) with the fixture values and prints each
 * answer as "label hex-of-its-XDR-encoding", so the test compares answers byte for byte.
 * Exits non-zero with clnt_sperror's message when a call fails. */
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <rpc/rpc.h>
#include "zoo_common.h"

static CLIENT *client;

static void fail(const char *what) {
    fprintf(stderr, "%s\n", clnt_sperror(client, what));
    exit(1);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0;
    int opt;
    while ((opt = getopt(argc, argv, "h:p:")) != -1) {
        if (opt == 'h') host = optarg;
        else if (opt == 'p') port = atoi(optarg);
        else { fprintf(stderr, "usage: zoo_client [-h HOST] -p PORT\n"); return 2; }
    }
    if (port <= 0) { fprintf(stderr, "usage: zoo_client [-h HOST] -p PORT\n"); return 2; }
    struct sockaddr_in address;
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return 2; }
    int sock = RPC_ANYSOCK;
    client = clnttcp_create(&address, TYPEZOO, TYPEZOO_V1, &sock, 0, 0);
    if (client == NULL) { fprintf(stderr, "%s\n", clnt_spcreateerror(host)); return 1; }

    if (zooproc_null_1(NULL, client) == NULL) fail("NULL");
    zoo *fixture = zoo_fixture();
    print_xdr_hex("arguments", (xdrproc_t)xdr_zoo, fixture);

    zoo *echoed = zooproc_echo_1(fixture, client);
    if (echoed == NULL) fail("ECHO");
    print_xdr_hex("echo", (xdrproc_t)xdr_zoo, echoed);

    zoo *transformed = zooproc_transform_1(fixture, client);
    if (transformed == NULL) fail("TRANSFORM");
    print_xdr_hex("transform", (xdrproc_t)xdr_zoo, transformed);

    shape shapes[5];
    memset(shapes, 0, sizeof(shapes));
    shapes[0].kind = SHAPE_CIRCLE; shapes[0].shape_u.radius = 21;
    shapes[1].kind = SHAPE_SQUARE; shapes[1].shape_u.side = -9;
    shapes[2].kind = SHAPE_RECT; shapes[2].shape_u.side = 1LL << 40;
    shapes[3].kind = SHAPE_NONE;
    shapes[4].kind = SHAPE_OTHER; shapes[4].shape_u.label = "sixteen-chars-ok";
    for (int i = 0; i < 5; i++) {
        char label[16];
        snprintf(label, sizeof(label), "shape%d", i);
        shape *answer = zooproc_shape_1(&shapes[i], client);
        if (answer == NULL) fail(label);
        print_xdr_hex(label, (xdrproc_t)xdr_shape, answer);
    }

    const char *names[] = {"all", "octopus", "nobody"};
    for (int i = 0; i < 3; i++) {
        char *name = (char *)names[i];
        char label[32];
        snprintf(label, sizeof(label), "find-%s", names[i]);
        lookup_result *answer = zooproc_find_1(&name, client);
        if (answer == NULL) fail(label);
        print_xdr_hex(label, (xdrproc_t)xdr_lookup_result, answer);
    }
    clnt_destroy(client);
    return 0;
}

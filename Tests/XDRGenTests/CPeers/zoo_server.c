/* zoo_server.c: the rpcgen-side server of the xdrgen interop test. Serves TYPEZOO v1 on
 * 127.0.0.1:PORT over TCP without rpcbind (binds and listens itself, then svctcp_create +
 * svc_register(..., 0)), prints "ready" once listening, serves until killed. Arguments
 * come from the rpcgen-generated dispatcher, which answers GARBAGE_ARGS when they do
 * not decode (e.g. a string over its declared bound). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <rpc/rpc.h>
#include "zoo_common.h"

extern void typezoo_1(struct svc_req *rqstp, SVCXPRT *transp);

void *zooproc_null_1_svc(void *argp, struct svc_req *rqstp) {
    static char dummy;
    (void)argp; (void)rqstp;
    return &dummy;
}

zoo *zooproc_echo_1_svc(zoo *argp, struct svc_req *rqstp) {
    static zoo result;
    (void)rqstp;
    xdr_free((xdrproc_t)xdr_zoo, (char *)&result);
    if (!zoo_copy((xdrproc_t)xdr_zoo, argp, &result, sizeof(result))) return NULL;
    return &result;
}

zoo *zooproc_transform_1_svc(zoo *argp, struct svc_req *rqstp) {
    static zoo result;
    (void)rqstp;
    xdr_free((xdrproc_t)xdr_zoo, (char *)&result);
    if (!zoo_copy((xdrproc_t)xdr_zoo, argp, &result, sizeof(result))) return NULL;
    zoo_transform(&result);
    return &result;
}

shape *zooproc_shape_1_svc(shape *argp, struct svc_req *rqstp) {
    static shape result;
    (void)rqstp;
    xdr_free((xdrproc_t)xdr_shape, (char *)&result);
    if (!zoo_copy((xdrproc_t)xdr_shape, argp, &result, sizeof(result))) return NULL;
    shape_transform(&result);
    return &result;
}

lookup_result *zooproc_find_1_svc(char **argp, struct svc_req *rqstp) {
    static lookup_result result;
    (void)rqstp;
    xdr_free((xdrproc_t)xdr_lookup_result, (char *)&result);
    zoo_find(*argp, &result);
    return &result;
}

int main(int argc, char **argv) {
    int port = 0;
    int opt;
    while ((opt = getopt(argc, argv, "p:")) != -1) {
        if (opt == 'p') port = atoi(optarg);
        else { fprintf(stderr, "usage: zoo_server -p PORT\n"); return 2; }
    }
    if (port <= 0) { fprintf(stderr, "usage: zoo_server -p PORT\n"); return 2; }
    /* A parent that spawned us from a thread with signals blocked must still be able to
     * stop us with SIGTERM. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in address;
    memset(&address, 0, sizeof(address));
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(sock, (struct sockaddr *)&address, sizeof(address)) != 0 || listen(sock, 64) != 0) {
        perror("zoo_server: bind/listen");
        return 1;
    }
    SVCXPRT *transport = svctcp_create(sock, 0, 0);
    if (transport == NULL || !svc_register(transport, TYPEZOO, TYPEZOO_V1, typezoo_1, 0)) {
        fprintf(stderr, "zoo_server: cannot create or register the TCP service\n");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    svc_run();
    return 1;
}

/*
 * A TESTECHO server generated with rpcgen (dispatch table from `rpcgen -m`) on the system
 * libtirpc: the C baseline for interop tests and rpcbench. Without -r it binds its own
 * loopback sockets and registers nothing with rpcbind; with -r it registers through the
 * host's rpcbind like any classic service.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <rpc/rpc.h>
#include <rpc/pmap_clnt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "echo.h"

extern void testecho_1(struct svc_req *rqstp, SVCXPRT *transp);

void *echoproc_null_1_svc(void *argp, struct svc_req *rqstp) {
    static char result;
    (void)argp; (void)rqstp;
    return &result;
}

char **echoproc_echo_1_svc(char **argp, struct svc_req *rqstp) {
    static char *result;
    (void)rqstp;
    result = *argp;
    return &result;
}

u_int *echoproc_whoami_1_svc(void *argp, struct svc_req *rqstp) {
    static u_int result;
    (void)argp;
    result = 0xffffffffu;
    if (rqstp->rq_cred.oa_flavor == AUTH_SYS) {
        struct authunix_parms *cred = (struct authunix_parms *)rqstp->rq_clntcred;
        result = (u_int)cred->aup_uid;
    }
    return &result;
}

static int bound_socket(int type, int port) {
    int fd = socket(AF_INET, type, 0);
    if (fd < 0) { perror("socket"); exit(1); }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); exit(1); }
    if (type == SOCK_STREAM && listen(fd, 128) < 0) { perror("listen"); exit(1); }
    return fd;
}

static void usage(void) {
    fprintf(stderr, "usage: echo_server -p PORT [-U UDPPORT] | -r\n");
    exit(2);
}

int main(int argc, char **argv) {
    int port = -1, udp_port = -1, use_rpcbind = 0, c;
    while ((c = getopt(argc, argv, "p:U:r")) != -1) {
        switch (c) {
        case 'p': port = atoi(optarg); break;
        case 'U': udp_port = atoi(optarg); break;
        case 'r': use_rpcbind = 1; break;
        default: usage();
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (use_rpcbind) {
        if (!svc_create(testecho_1, TESTECHO, TESTECHO_V1, "tcp") ||
            !svc_create(testecho_1, TESTECHO, TESTECHO_V1, "udp")) {
            fprintf(stderr, "echo_server: cannot register with rpcbind\n");
            return 1;
        }
    } else {
        if (port < 0) usage();
        SVCXPRT *tcp = svctcp_create(bound_socket(SOCK_STREAM, port), 0, 0);
        if (!tcp || !svc_register(tcp, TESTECHO, TESTECHO_V1, testecho_1, 0)) {
            fprintf(stderr, "echo_server: cannot create TCP service\n");
            return 1;
        }
        if (udp_port >= 0) {
            SVCXPRT *udp = svcudp_create(bound_socket(SOCK_DGRAM, udp_port));
            if (!udp || !svc_register(udp, TESTECHO, TESTECHO_V1, testecho_1, 0)) {
                fprintf(stderr, "echo_server: cannot create UDP service\n");
                return 1;
            }
        }
    }
    printf("ready\n");
    fflush(stdout);
    svc_run();
    fprintf(stderr, "echo_server: svc_run returned\n");
    return 1;
}

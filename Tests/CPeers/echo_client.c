/*
 * A TESTECHO client on rpcgen's client stubs and the system libtirpc: checks answers in
 * interop tests, and times sequential calls for rpcbench (CLOCK_MONOTONIC per call).
 * With -w (bench modes only) it connects and warms up, prints "connected", and waits for a
 * line on stdin before timing, so that rpcbench can start many clients together and time
 * their calls without process start-up. EOF on stdin (the launcher died) ends it.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <rpc/rpc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "echo.h"

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(stderr,
        "usage: echo_client -h HOST -p PORT|0 -t tcp|udp [-a none|sys] -m check|bench|benchnull|whoami\n"
        "                   [-n N] [-s SIZE] [-x TEXT] [-w]\n"
        "  -w  (bench, benchnull) after connecting and warming up, print \"connected\" and\n"
        "      wait for a line on stdin before the timed calls\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *transport = "tcp", *auth = "none", *mode = "check", *text = "hello";
    int port = -1, n = 10000, size = 16, wait_for_start = 0, c;
    while ((c = getopt(argc, argv, "h:p:t:a:m:n:s:x:w")) != -1) {
        switch (c) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 't': transport = optarg; break;
        case 'a': auth = optarg; break;
        case 'm': mode = optarg; break;
        case 'n': n = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'x': text = optarg; break;
        case 'w': wait_for_start = 1; break;
        default: usage();
        }
    }
    if (port < 0 || n <= 0 || size < 0) usage();

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        struct hostent *he = gethostbyname(host);
        if (!he) { fprintf(stderr, "echo_client: unknown host %s\n", host); return 1; }
        memcpy(&addr.sin_addr, he->h_addr_list[0], sizeof addr.sin_addr);
    }
    int sock = RPC_ANYSOCK;
    CLIENT *clnt;
    if (port == 0) {
        /* Port 0: ask the host's rpcbind where the program is, as classic clients do. */
        clnt = clnt_create(host, TESTECHO, TESTECHO_V1, transport);
    } else if (strcmp(transport, "tcp") == 0) {
        clnt = clnttcp_create(&addr, TESTECHO, TESTECHO_V1, &sock, 0, 0);
    } else if (strcmp(transport, "udp") == 0) {
        struct timeval wait = {1, 0};
        clnt = clntudp_create(&addr, TESTECHO, TESTECHO_V1, wait, &sock);
    } else {
        usage();
        return 2;
    }
    if (!clnt) {
        clnt_pcreateerror("echo_client");
        return 1;
    }
    struct timeval total = {25, 0};
    clnt_control(clnt, CLSET_TIMEOUT, (char *)&total);
    if (strcmp(auth, "sys") == 0) {
        auth_destroy(clnt->cl_auth);
        clnt->cl_auth = authunix_create_default();
    } else if (strcmp(auth, "none") != 0) {
        usage();
    }

    if (strcmp(mode, "check") == 0) {
        if (!echoproc_null_1(NULL, clnt)) { clnt_perror(clnt, "echo_client: NULL"); return 1; }
        char *arg = (char *)text;
        char **reply = echoproc_echo_1(&arg, clnt);
        if (!reply) { clnt_perror(clnt, "echo_client: ECHO"); return 1; }
        printf("%s\n", *reply);
        return 0;
    }
    if (strcmp(mode, "whoami") == 0) {
        u_int *uid = echoproc_whoami_1(NULL, clnt);
        if (!uid) { clnt_perror(clnt, "echo_client: WHOAMI"); return 1; }
        printf("%u\n", *uid);
        return 0;
    }
    int null_calls = strcmp(mode, "benchnull") == 0;
    if (strcmp(mode, "bench") != 0 && !null_calls) usage();

    char *payload = malloc((size_t)size + 1);
    memset(payload, 'x', (size_t)size);
    payload[size] = 0;
    double *lat = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < 100; i++) {
        if (!echoproc_echo_1(&payload, clnt)) { clnt_perror(clnt, "echo_client: warm-up"); return 1; }
    }
    if (wait_for_start) {
        /* stdout is a pipe (fully buffered): flush, or the launcher never sees the line. */
        printf("connected\n");
        fflush(stdout);
        char line[64];
        if (!fgets(line, sizeof line, stdin)) { fprintf(stderr, "echo_client: no start line on stdin\n"); return 1; }
    }
    double start = now_us();
    for (int i = 0; i < n; i++) {
        double t0 = now_us();
        void *reply = null_calls ? (void *)echoproc_null_1(NULL, clnt) : (void *)echoproc_echo_1(&payload, clnt);
        if (!reply) { clnt_perror(clnt, "echo_client: call"); return 1; }
        lat[i] = now_us() - t0;
    }
    double seconds = (now_us() - start) / 1e6;
    qsort(lat, (size_t)n, sizeof(double), compare_double);
    printf("calls=%d seconds=%.6f p50_us=%.1f p99_us=%.1f\n", n, seconds, lat[n / 2], lat[(int)(n * 0.99)]);
    return 0;
}

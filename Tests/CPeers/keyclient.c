/*
 * A keyserver client on the system libtirpc's own key_* functions (key_call.c), which find
 * the keyserver through rpcbind (netid "local") exactly as classic AUTH_DES programs do.
 * One operation per run; prints the result as hex or a status word. Used by the keyserver
 * interop and isolation tests. The "spoof" mode talks to the socket directly with an
 * AUTH_SYS uid other than its own, to show the keyserver refuses it.
 */
#include <rpc/rpc.h>
#include <rpc/key_prot.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Exported by libtirpc but not declared in its headers. */
int key_encryptsession_pk(char *, netobj *, des_block *);
int key_decryptsession_pk(char *, netobj *, des_block *);
int key_get_conv(char *, des_block *);

static int parse_block(const char *hex, des_block *block) {
    if (strlen(hex) != 16) return -1;
    for (int i = 0; i < 8; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
        block->c[i] = (char)v;
    }
    return 0;
}

static void print_block(const des_block *block) {
    for (int i = 0; i < 8; i++) printf("%02x", (unsigned char)block->c[i]);
    printf("\n");
}

static int usage(void) {
    fprintf(stderr,
        "usage: keyclient set HEX48 | isset | gendes | encrypt NETNAME PUBHEX BLOCK | decrypt NETNAME PUBHEX BLOCK\n"
        "                 | conv PUBHEX | spoof SOCKET UID\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    const char *op = argv[1];
    if (strcmp(op, "set") == 0 && argc == 3) {
        int r = key_setsecret(argv[2]);
        printf("%s\n", r == 0 ? "ok" : "failed");
        return r == 0 ? 0 : 1;
    }
    if (strcmp(op, "isset") == 0) {
        printf("%s\n", key_secretkey_is_set() ? "yes" : "no");
        return 0;
    }
    if (strcmp(op, "gendes") == 0) {
        des_block block;
        if (key_gendes(&block) != 0) { printf("failed\n"); return 1; }
        print_block(&block);
        return 0;
    }
    if ((strcmp(op, "encrypt") == 0 || strcmp(op, "decrypt") == 0) && argc == 5) {
        netobj key;
        key.n_len = (u_int)strlen(argv[3]) + 1;       /* hex plus NUL, as auth_des.c sends it */
        key.n_bytes = argv[3];
        des_block block;
        if (parse_block(argv[4], &block) != 0) return usage();
        int r = strcmp(op, "encrypt") == 0 ? key_encryptsession_pk(argv[2], &key, &block)
                                           : key_decryptsession_pk(argv[2], &key, &block);
        if (r != 0) { printf("failed\n"); return 1; }
        print_block(&block);
        return 0;
    }
    if (strcmp(op, "conv") == 0 && argc == 3) {
        des_block block;
        if (key_get_conv(argv[2], &block) != 0) { printf("failed\n"); return 1; }
        print_block(&block);
        return 0;
    }
    if (strcmp(op, "spoof") == 0 && argc == 4) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un addr;
        memset(&addr, 0, sizeof addr);
        addr.sun_family = AF_UNIX;
        strncpy(addr.sun_path, argv[2], sizeof addr.sun_path - 1);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 1; }
        struct netbuf raddr = { sizeof addr, sizeof addr, &addr };
        CLIENT *clnt = clnt_vc_create(fd, &raddr, KEY_PROG, KEY_VERS2, 0, 0);
        if (!clnt) { clnt_pcreateerror("keyclient"); return 1; }
        clnt->cl_auth = authunix_create("", (uid_t)atoi(argv[3]), 0, 0, NULL);
        key_netstres result;
        memset(&result, 0, sizeof result);
        struct timeval timeout = {10, 0};
        enum clnt_stat stat = clnt_call(clnt, KEY_NET_GET, (xdrproc_t)xdr_void, NULL,
                                        (xdrproc_t)xdr_key_netstres, (caddr_t)&result, timeout);
        if (stat == RPC_AUTHERROR) {
            struct rpc_err err;
            clnt_geterr(clnt, &err);
            printf("autherror %d\n", (int)err.re_why);
            return 0;
        }
        printf("%s status %d\n", stat == RPC_SUCCESS ? "answered" : clnt_sperrno(stat), (int)result.status);
        return 0;
    }
    return usage();
}

/*
 * pam_securerpc: login integration for Secure RPC, like Solaris' pam_dhkeys. At session open it
 * runs `keylogin --password-stdin` as the user with the password typed at login, so the host's
 * keyserverd holds the user's keys for the session; at session close it runs `keylogout` as the
 * user.
 *
 * Trust boundary: this code runs inside the login program (often as root), on a password. It
 * trusts the PAM stack for the user's name and the module arguments from /etc/pam.d (written by
 * root). It trusts nothing the user controls: the programs run with the user's uid and groups
 * only (never root), through execve with a fixed argv and a clean environment (no shell, nothing
 * inherited), with every other descriptor closed. The password travels only through the child's
 * standard input; it is never in argv, the environment or a log line, and every copy is zeroed.
 *
 * The key work (opening the sealed keys, talking to keyserverd) stays in keylogin and keylogout:
 * one implementation, reviewed once, and a C module small enough to read in one sitting.
 *
 * Stack it as:
 *   auth     optional  pam_securerpc.so            (after the module that reads the password:
 *                                                   it reuses PAM_AUTHTOK, asking only if unset)
 *   session  optional  pam_securerpc.so [options]  (or required: login fails when keylogin does)
 * Options: keylogin=PATH keylogout=PATH socket=PATH db=PATH config=PATH domain=DOMAIN timeout=SECONDS.
 *
 * Root is skipped: its key is the host key, loaded by keyserverd from the root key file
 * (`keylogin -r`), and `keylogout` by root would take it from every host service.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>
#include <syslog.h>

#define DATA_NAME "pam_securerpc_authtok"
#define MAX_GROUPS 1024
#define MAX_LOGGED_OUTPUT 1024

struct options {
    const char *keylogin;
    const char *keylogout;
    const char *socket;
    const char *db;
    const char *config;
    const char *domain;
    int timeout; /* seconds before the child is killed: a hung keyserver must not hang logins */
};

static void parse_options(pam_handle_t *pamh, int argc, const char **argv, struct options *opt)
{
    opt->keylogin = "/usr/local/bin/keylogin";
    opt->keylogout = "/usr/local/bin/keylogout";
    opt->socket = NULL;
    opt->db = NULL;
    opt->config = NULL;
    opt->domain = NULL;
    opt->timeout = 30;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "keylogin=", 9) == 0) opt->keylogin = a + 9;
        else if (strncmp(a, "keylogout=", 10) == 0) opt->keylogout = a + 10;
        else if (strncmp(a, "socket=", 7) == 0) opt->socket = a + 7;
        else if (strncmp(a, "db=", 3) == 0) opt->db = a + 3;
        else if (strncmp(a, "config=", 7) == 0) opt->config = a + 7;
        else if (strncmp(a, "domain=", 7) == 0) opt->domain = a + 7;
        else if (strncmp(a, "timeout=", 8) == 0) {
            char *end = NULL;
            long t = strtol(a + 8, &end, 10);
            if (end && *end == '\0' && t > 0 && t <= 3600) opt->timeout = (int)t;
            else pam_syslog(pamh, LOG_WARNING, "ignoring bad option \"%s\" (timeout=1..3600)", a);
        } else pam_syslog(pamh, LOG_WARNING, "unknown option \"%s\" ignored", a);
    }
}

/* pam_set_data cleanup: the kept password is zeroed however the handle ends. */
static void zero_and_free(pam_handle_t *pamh, void *data, int error_status)
{
    (void)pamh;
    (void)error_status;
    if (data) {
        explicit_bzero(data, strlen(data));
        free(data);
    }
}

/*
 * The auth phase only keeps the password for the session: it proves nothing itself (another
 * module authenticates), hence PAM_IGNORE whatever happens.
 */
PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)flags;
    struct options opt;
    parse_options(pamh, argc, argv, &opt);
    const char *token = NULL;
    if (pam_get_authtok(pamh, PAM_AUTHTOK, &token, NULL) != PAM_SUCCESS || token == NULL) return PAM_IGNORE;
    char *copy = strdup(token);
    if (copy == NULL) return PAM_IGNORE;
    if (pam_set_data(pamh, DATA_NAME, copy, zero_and_free) != PAM_SUCCESS) zero_and_free(pamh, copy, 0);
    return PAM_IGNORE;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)pamh; (void)flags; (void)argc; (void)argv;
    return PAM_IGNORE;
}

/* The target user; NULL for root and unknown users (logged). */
static const struct passwd *session_user(pam_handle_t *pamh)
{
    const char *name = NULL;
    if (pam_get_user(pamh, &name, NULL) != PAM_SUCCESS || name == NULL || *name == '\0') {
        pam_syslog(pamh, LOG_ERR, "no user name");
        return NULL;
    }
    const struct passwd *pw = pam_modutil_getpwnam(pamh, name);
    if (pw == NULL) {
        pam_syslog(pamh, LOG_ERR, "unknown user \"%s\"", name);
        return NULL;
    }
    return pw;
}

/* Logs the child's output (keylogin's one line, in words; never the password) line by line. */
static void log_output(pam_handle_t *pamh, int priority, const char *program, char *text)
{
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        for (char *c = line; *c; c++) if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        pam_syslog(pamh, priority, "%s: %s", program, line);
    }
}

/* Kernels before 5.9 lack close_range: close one by one up to the descriptor limit. */
static int close_each(int from)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    rlim_t top = limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > 1048576 ? 1048576 : limit.rlim_cur;
    for (rlim_t fd = (rlim_t)from; fd < top; fd++) (void)close((int)fd);
    return 0;
}

/*
 * Runs argv[0] as the user with `input` (may be NULL) on its standard input; its standard
 * output and error are logged. Returns the exit status (0..255), or -1 when it could not run,
 * was killed or timed out.
 *
 * Everything the child needs (argv, environment, groups) is prepared here, before fork: the
 * login program may have threads, and between fork and exec only async-signal-safe calls are
 * allowed (no NSS lookups, no malloc), so the child makes system calls only.
 */
static int run_as_user(pam_handle_t *pamh, const struct passwd *pw, const struct options *opt,
                       char *const argv[], const char *input)
{
    gid_t groups[MAX_GROUPS];
    int ngroups = MAX_GROUPS;
    if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &ngroups) < 0) {
        pam_syslog(pamh, LOG_ERR, "%s is in more than %d groups", pw->pw_name, MAX_GROUPS);
        return -1;
    }
    /* Only what keylogin reads: the configuration file's path when given. */
    char conf[PATH_MAX + 32];
    char *envp[3];
    int nenv = 0;
    envp[nenv++] = "PATH=/usr/local/bin:/usr/bin:/bin";
    if (opt->config) {
        if (snprintf(conf, sizeof conf, "SECURERPC_CONF=%s", opt->config) >= (int)sizeof conf) return -1;
        envp[nenv++] = conf;
    }
    envp[nenv] = NULL;

    /* stdin: a socket pair, so that writing to a child that already exited is EPIPE with
       MSG_NOSIGNAL rather than a SIGPIPE that would kill the login program. */
    int in[2], out[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) return -1;
    if (pipe2(out, O_CLOEXEC) != 0) { close(in[0]); close(in[1]); return -1; }

    /* The application may reap children in a SIGCHLD handler; ours is waited for here. */
    struct sigaction dfl, old_chld;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &old_chld);

    pid_t pid = fork();
    if (pid == 0) {
        /* The child: system calls only. A failure is one fixed line on the output pipe. */
        const char *why = NULL;
        if (dup2(in[1], 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0) why = "cannot set up descriptors\n";
        else if (close_range(3, ~0U, 0) != 0 && close_each(3) != 0) why = "cannot close descriptors\n";
        else if (setgroups((size_t)ngroups, groups) != 0) why = "setgroups failed\n";
        else if (setgid(pw->pw_gid) != 0) why = "setgid failed\n";
        else if (setuid(pw->pw_uid) != 0) why = "setuid failed\n";
        else if (getuid() != pw->pw_uid || geteuid() != pw->pw_uid || getgid() != pw->pw_gid || getegid() != pw->pw_gid)
            why = "the uid or gid did not change\n";
        else if (setuid(0) == 0 && pw->pw_uid != 0) why = "could regain root\n";
        else if (chdir("/") != 0) why = "chdir / failed\n";
        if (why == NULL) {
            sigaction(SIGPIPE, &dfl, NULL);
            execve(argv[0], argv, envp);
            why = "cannot execute the program\n";
        }
        ssize_t ignored = write(1, why, strlen(why));
        (void)ignored;
        _exit(127);
    }
    close(in[1]);
    close(out[1]);
    if (pid < 0) {
        pam_syslog(pamh, LOG_ERR, "fork failed: %m");
        close(in[0]);
        close(out[0]);
        sigaction(SIGCHLD, &old_chld, NULL);
        return -1;
    }

    if (input) {
        /* Shorter than a socket buffer: this never blocks on a child that does not read. */
        size_t length = strlen(input), sent = 0;
        while (sent < length) {
            ssize_t n = send(in[0], input + sent, length - sent, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            sent += (size_t)n;
        }
        if (sent == length) (void)send(in[0], "\n", 1, MSG_NOSIGNAL);
    }
    close(in[0]);

    char output[MAX_LOGGED_OUTPUT + 1];
    size_t kept = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int timed_out = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = (long)opt->timeout * 1000 - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0) { timed_out = 1; kill(pid, SIGKILL); break; }
        struct pollfd p = { .fd = out[0], .events = POLLIN };
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        if (r == 0) continue;
        char buffer[512];
        ssize_t n = read(out[0], buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        size_t take = (size_t)n < MAX_LOGGED_OUTPUT - kept ? (size_t)n : MAX_LOGGED_OUTPUT - kept;
        memcpy(output + kept, buffer, take);
        kept += take;
    }
    close(out[0]);
    output[kept] = '\0';

    int status = 0;
    pid_t waited;
    do waited = waitpid(pid, &status, 0); while (waited < 0 && errno == EINTR);
    sigaction(SIGCHLD, &old_chld, NULL);

    int result = -1;
    if (waited == pid && WIFEXITED(status)) result = WEXITSTATUS(status);
    int priority = result == 0 ? LOG_INFO : LOG_ERR;
    log_output(pamh, priority, argv[0], output);
    if (timed_out) pam_syslog(pamh, LOG_ERR, "%s: killed after %d s", argv[0], opt->timeout);
    else if (result < 0) pam_syslog(pamh, LOG_ERR, "%s: did not exit normally", argv[0]);
    return result;
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)flags;
    struct options opt;
    parse_options(pamh, argc, argv, &opt);
    const struct passwd *pw = session_user(pamh);
    if (pw == NULL) return PAM_SESSION_ERR;
    if (pw->pw_uid == 0) return PAM_IGNORE;
    const void *data = NULL;
    if (pam_get_data(pamh, DATA_NAME, &data) != PAM_SUCCESS || data == NULL) {
        /* No password in this handle (a key-based ssh login, or an application that
           authenticated in another process): nothing to log in with. */
        pam_syslog(pamh, LOG_NOTICE, "no login password for %s: not logged in to the keyserver", pw->pw_name);
        return PAM_IGNORE;
    }

    const char *args[12];
    int n = 0;
    args[n++] = opt.keylogin;
    args[n++] = "--password-stdin";
    if (opt.socket) { args[n++] = "--socket"; args[n++] = opt.socket; }
    if (opt.db) { args[n++] = "--db"; args[n++] = opt.db; }
    if (opt.config) { args[n++] = "--config"; args[n++] = opt.config; }
    if (opt.domain) { args[n++] = "--domain"; args[n++] = opt.domain; }
    args[n] = NULL;
    int status = run_as_user(pamh, pw, &opt, (char *const *)args, data);
    /* Used once: replacing the data runs zero_and_free on the copy. */
    pam_set_data(pamh, DATA_NAME, NULL, NULL);
    if (status != 0) {
        pam_syslog(pamh, LOG_ERR, "keylogin failed for %s (status %d)", pw->pw_name, status);
        return PAM_SESSION_ERR;
    }
    return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
    (void)flags;
    struct options opt;
    parse_options(pamh, argc, argv, &opt);
    const struct passwd *pw = session_user(pamh);
    if (pw == NULL) return PAM_SESSION_ERR;
    if (pw->pw_uid == 0) return PAM_IGNORE;
    const char *args[4];
    int n = 0;
    args[n++] = opt.keylogout;
    if (opt.socket) { args[n++] = "--socket"; args[n++] = opt.socket; }
    args[n] = NULL;
    int status = run_as_user(pamh, pw, &opt, (char *const *)args, NULL);
    if (status != 0) {
        pam_syslog(pamh, LOG_ERR, "keylogout failed for %s (status %d)", pw->pw_name, status);
        return PAM_SESSION_ERR;
    }
    return PAM_SUCCESS;
}

// The OpenSSL baseline of rpcbench and keybench: `openssl speed` run now, on this machine.
// A process started from a NIO or Swift-concurrency thread inherits that thread's blocked
// signals, and openssl speed ends its timed runs on SIGALRM: blocked, it would spin forever
// (keybench once ran it under timeout(1), which does not change the mask: each group took
// the whole 60 s and gave no figure). posix_spawn hands the child an empty signal mask.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs `arguments` (looked up in PATH) with an empty signal mask and stdin from /dev/null;
/// returns its standard output, or nil when it could not be started or failed.
func runWithSignalsUnblocked(_ arguments: [String]) -> String? {
    var pipe: [Int32] = [0, 0]
    guard Glibc.pipe(&pipe) == 0 else { return nil }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, pipe[1], 1)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addclose(&actions, pipe[0])
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    sigaddset(&defaults, SIGALRM)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, environ)
    close(pipe[1])
    defer { close(pipe[0]) }
    guard spawned == 0 else { return nil }
    let output = FileHandle(fileDescriptor: pipe[0], closeOnDealloc: false).readDataToEndOfFile()
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return status == 0 ? String(decoding: output, as: UTF8.self) : nil
}

public enum OpenSSLSpeed {
    /// `openssl speed -elapsed -seconds N ffdhBITS`: OpenSSL's Diffie-Hellman derive op/s,
    /// or nil when openssl is missing or printed no figure.
    public static func ffdhDerivesPerSecond(bits: Int, seconds: Int = 1) -> Double? {
        guard let output = runWithSignalsUnblocked(["openssl", "speed", "-elapsed", "-seconds", "\(max(seconds, 1))", "ffdh\(bits)"]) else {
            return nil
        }
        for line in output.split(separator: "\n") where line.contains("bits ffdh") {
            if let last = line.split(separator: " ").last, let value = Double(last) { return value }
        }
        return nil
    }
}

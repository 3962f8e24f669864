// keyserverd as the daemon runs it (its default limits, no test configuration) against a
// local user who opens more connections to its socket (mode 0666) than the server holds
// in total, each with half a record (issue 13 item 3). Another user's keylogin must still
// work, and the refusals must be logged at a bounded rate, not one line each. The
// flooding user is a perl process under setpriv, so the kernel's SO_PEERCRED uid is really
// another one.

import Foundation
import XCTest

final class KeyserverConnectionLimitTests: XCTestCase {
    private static let holdScript = #"""
    use strict; use IO::Socket::UNIX;
    $| = 1;
    $SIG{PIPE} = "IGNORE";   # the server closes the connections over the cap
    my ($path, $n) = @ARGV;
    my @held;
    for (1..$n) {
        my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path) or die "connect $_: $!";
        print $s pack("N", 0x80000000 | 100) . "abcd";   # half a record
        push @held, $s;
    }
    print "holding $n\n";
    sleep 600;
    """#

    func testOneUIDHoldingConnectionsCannotStopAnotherUIDsKeylogin() throws {
        let bin = { Peers.productPath($0) }
        let site = try SiteSandbox(prefix: "kscap")
        defer { site.remove() }
        XCTAssertEqual(try site.run([bin("keyadmin"), "init", "--db", site.db]).status, 0)
        let made = try site.run([bin("keyadmin"), "newkey", "--db", site.db, "--user", "4242", "--domain", "example.org",
                                 "--mechanism", "dh192-des", "--password-file", site.password])
        XCTAssertEqual(made.status, 0, made.stderr)
        for file in [site.db, site.db + "-wal", site.db + "-shm"] { chmod(file, 0o644) }
        let keyserver = try BackgroundProcess([bin("keyserverd"), "--socket", site.socket, "--root-key", site.path("rootkey"),
                                               "--no-rpcbind", "--log-level", "info"], readyMarker: "ready")
        defer { keyserver.stop(signal: SIGTERM) }

        // uid 4001 opens 4,200 connections: more than keyserverd's 4,096 in total.
        let script = site.path("hold.pl")
        try Self.holdScript.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o644)
        let flood = try BackgroundProcess(["setpriv", "--reuid=4001", "--regid=4001", "--clear-groups", "perl", script, site.socket, "4200"],
                                          readyMarker: "holding", timeout: 60)
        defer { flood.stop(signal: SIGKILL) }

        // uid 4242 logs in all the same.
        let login = try site.run([bin("keylogin"), "--db", site.db, "--netname", "unix.4242@example.org", "--socket", site.socket,
                                  "--password-stdin"], as: 4242, stdin: "pw")
        XCTAssertEqual(login.status, 0, "keylogin locked out: \(login.stderr)")
        XCTAssertTrue(login.stdout.contains("unix.4242@example.org logged in"), login.stdout)

        keyserver.stop(signal: SIGTERM)
        let refusalLines = keyserver.log.split(separator: "\n").filter { $0.contains("refused") }
        XCTAssertFalse(refusalLines.isEmpty, "the refusals are logged")
        XCTAssertLessThan(refusalLines.count, 10, "about 4,000 refusals logged line by line")
    }
}

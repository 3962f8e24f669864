// Smoke runs of `rpcbench soak` and `rpcbench flood` (issue 13 item 4), `rpcbench allocs` and
// `rpcbench gss --steps` and `keybench dh` (issue 18) as processes, the way
// docs/RELIABILITY.md runs them, only short: they start, their server child comes up, they
// print the lines the document quotes, and they exit 0 (no failed call). Shape only: the
// numbers belong to the release-build runs in the document, never to a test's assertions.

import Foundation
import XCTest

final class RPCBenchSoakTests: XCTestCase {
    private var rpcbench: String { Peers.productPath("rpcbench") }

    /// The keyed flavors need root (the in-process keyserver acts for two uids).
    private func requireRoot() throws {
        guard getuid() == 0 else { throw XCTSkip("rpcbench soak/flood with keys needs root") }
    }

    func testSoakPrintsAReportLinePerIntervalAndASummary() throws {
        try requireRoot()
        let run = try Command.run([rpcbench, "soak", "--duration", "3", "--rate", "200", "--connections", "4", "--report-interval", "1"],
                                  timeout: 300)
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.first?.hasPrefix("rpcbench soak: 4 connections, 200 calls/s, 3 s, gss-privacy") == true, run.stdout)

        let reports = lines.filter { $0.hasPrefix("elapsed_s=") }.map(fields)
        XCTAssertGreaterThanOrEqual(reports.count, 2, run.stdout)
        for report in reports {
            for key in ["calls", "errors", "server_rss_kib", "server_fds"] {
                XCTAssertNotNil(report[key].flatMap(Int.init), "\(key) in \(report)")
            }
            for key in ["p50_ms", "p99_ms", "p99.9_ms"] {
                XCTAssertNotNil(report[key].flatMap(Double.init), "\(key) in \(report)")
            }
            XCTAssertEqual(report["errors"], "0")
        }

        let summary = try XCTUnwrap(lines.last { $0.hasPrefix("summary ") }.map(fields), run.stdout)
        for key in ["calls", "errors", "rss_first_kib", "rss_last_kib", "rss_max_kib", "fds_first", "fds_last"] {
            XCTAssertNotNil(summary[key].flatMap(Int.init), "\(key) in \(summary)")
        }
        XCTAssertNotNil(summary["achieved_per_s"].flatMap(Double.init))
        XCTAssertEqual(summary["errors"], "0")
        // Every call of every interval is in the summary, and the schedule was 200/s for 3 s.
        XCTAssertEqual(Int(summary["calls"]!), reports.compactMap { $0["calls"].flatMap(Int.init) }.reduce(0, +))
        XCTAssertEqual(Int(summary["calls"]!), 600)
    }

    func testSoakWithAddressNeedsAuthSys() throws {
        let run = try Command.run([rpcbench, "soak", "--address", "127.0.0.1:1", "--auth", "gss-privacy"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("--auth sys"), run.stderr)
    }

    func testFloodPrintsARowPerPhase() throws {
        try requireRoot()
        let run = try Command.run([rpcbench, "flood", "--seconds", "1", "--udp-datagrams", "20000", "--half-records", "40",
                                   "--principals", "200", "--inits", "2000", "--churn-connections", "500"], timeout: 300)
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        // Empty lines kept: one ends the table.
        let lines = run.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let header = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("flood ") && $0.contains("legit calls/s") }, run.stdout)
        let rows = lines[(header + 1)...].prefix { !$0.isEmpty }
        XCTAssertEqual(rows.map { $0.split(separator: " ").first.map(String.init) ?? "" },
                       ["idle", "cpu-hog", "udp-garbage", "half-records", "gss-init", "churn", "idle"], run.stdout)
        for row in rows {
            // calls/s, ratio, p50, p99, errors, new client ms, server CPU, flooder CPU, RSS and fds.
            let numbers = #"\d+ +\d+\.\d\d +\d+ +\d+ +0 +[\d.]+ +\d+ % +(\d+ %|-) +[\d.]+ → [\d.]+ +\d+ → \d+$"#
            XCTAssertNotNil(row.range(of: numbers, options: .regularExpression), row)
        }
        XCTAssertTrue(lines.contains { $0.hasPrefix("gss-init: ") && $0.contains("INITs naming 200 principals") }, run.stdout)
    }

    /// `rpcbench allocs` under the counter build.sh makes (issue 18): a line per hot path,
    /// and the raw client it uses to isolate the server allocates nothing per call (checked
    /// against the C server). Counts are not asserted: they belong to release builds.
    func testAllocsPrintsALinePerHotPathUnderTheCounter() throws {
        let peers = try Peers.cPeers()
        let counter = peers.appendingPathComponent("libmalloc_count.so").path
        let unpreloaded = try Command.run([rpcbench, "allocs", "--quick"], timeout: 120)
        XCTAssertNotEqual(unpreloaded.status, 0)
        XCTAssertTrue((unpreloaded.stdout + unpreloaded.stderr).contains("LD_PRELOAD"), unpreloaded.stderr)

        let run = try Command.run(["/usr/bin/env", "LD_PRELOAD=" + counter, rpcbench, "allocs", "--quick"], timeout: 300)
        XCTAssertEqual(run.status, 0, "stdout:\n\(run.stdout)\nstderr:\n\(run.stderr)")
        let figures = run.stdout.split(separator: "\n").filter { $0.contains("allocations/call") }
        // Server alone, client and server, and client on its own loop and server: for NULL
        // and ECHO, with AUTH_NONE and AUTH_SYS.
        XCTAssertEqual(figures.count, 12, run.stdout)
        XCTAssertEqual(figures.filter { $0.contains("client on its loop + server") }.count, 4, run.stdout)
        for line in figures {
            let value = line.range(of: #"[0-9.]+(?= allocations/call)"#, options: .regularExpression).flatMap { Double(line[$0]) }
            XCTAssertNotNil(value, String(line))
            XCTAssertGreaterThan(value ?? 0, 0, "the Swift runtime allocates per call: \(line)")
            // Sequential calls between threads make some thread wait and be woken.
            let wakeUps = line.range(of: #"[0-9.]+(?= thread wake-ups/call)"#, options: .regularExpression).flatMap { Double(line[$0]) }
            XCTAssertNotNil(wakeUps, String(line))
            XCTAssertGreaterThan(wakeUps ?? 0, 0, String(line))
        }

        let port = try freePort()
        let server = try BackgroundProcess([peers.appendingPathComponent("echo_server").path, "-p", "\(port)"], readyMarker: "ready")
        defer { server.stop(signal: SIGTERM) }
        let check = try Command.run(["/usr/bin/env", "LD_PRELOAD=" + counter, rpcbench, "allocs", "--quick", "--check-raw-client", "\(port)"],
                                    timeout: 120)
        XCTAssertEqual(check.status, 0, check.stderr)
        XCTAssertTrue(check.stdout.contains("raw client alone, ECHO 16 B, AUTH_NONE: 0.00 allocations/call"), check.stdout)
    }

    /// keybench dh prints OpenSSL's figure beside each strong group. It used to start
    /// openssl speed under timeout(1) with SIGALRM still blocked (inherited from a Swift
    /// concurrency thread): each group spun until the 60 s kill and printed "—".
    func testKeybenchDHPrintsTheOpenSSLBaseline() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { throw XCTSkip("no openssl") }
        let run = try Command.run([Peers.productPath("keybench"), "dh", "--seconds", "0.1"], timeout: 90)
        XCTAssertEqual(run.status, 0, run.stderr)
        for group in ["ffdhe2048", "ffdhe3072", "ffdhe4096"] {
            guard let row = run.stdout.split(separator: "\n").first(where: { $0.hasPrefix(group) }) else {
                XCTFail("no \(group) row: \(run.stdout)"); continue
            }
            let columns = row.split(separator: " ")
            XCTAssertEqual(columns.count, 7, String(row))
            XCTAssertNotNil(columns.count > 4 ? Double(columns[4]) : nil, "no OpenSSL figure: \(row)")
        }
    }

    /// `rpcbench gss --steps`: a line per step of a set-up under each group's rate.
    func testGSSStepsPrintsEachStepOfASetUp() throws {
        let run = try Command.run([rpcbench, "gss", "--setups", "5", "--steps", "--no-openssl", "--calls", "32", "--rounds", "1"],
                                  timeout: 300)
        XCTAssertEqual(run.status, 0, run.stderr)
        for step in ["ephemeral key generation", "derivation", "keyserver K_ss", "connect + AUTH_SYS NULL + close", "rest (INIT"] {
            XCTAssertEqual(run.stdout.components(separatedBy: step).count - 1, 3, "\(step): \(run.stdout)")
        }
        XCTAssertFalse(run.stdout.contains("refused"), "the bench's server refused its own connections: \(run.stdout)")
    }

    /// Fewer calls than the 32 callers of a round timed nothing and printed "0 calls/s,
    /// -nan×"; now a usage error before anything runs.
    func testGSSRefusesCallsThatTimeNothing() throws {
        let run = try Command.run([rpcbench, "gss", "--no-setups", "--no-openssl", "--calls", "20", "--rounds", "1"], timeout: 60)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("--calls must be at least 32"), run.stderr)
    }

    func testFloodRefusesANonLoopbackTarget() throws {
        let run = try Command.run([rpcbench, "flood", "--address", "192.0.2.1:111", "--auth", "sys"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("loopback only"), run.stderr)
    }

    private func fields(_ line: String) -> [String: String] {
        var result: [String: String] = [:]
        for part in line.split(separator: " ") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { result[String(kv[0])] = String(kv[1]) }
        }
        return result
    }
}

// The systemd units in deploy/ (issue 16): each hardened to an exposure of at most 3.0 by
// `systemd-analyze security` (offline: this machine does not run systemd as PID 1, so the
// units are judged, not started), each daemon's process never running with capabilities
// or new privileges, and sent SIGHUP only where its daemon reloads on it.

import Foundation
import XCTest

final class DeployUnitsTests: XCTestCase {
    private let units = ["keyserverd.service", "keydird.service", "filesvc-server.service"]

    private func unitPath(_ name: String) -> String {
        Peers.packageRoot.appendingPathComponent("deploy").appendingPathComponent(name).path
    }

    func testEveryUnitIsExposedAtMostThreePointZero() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
            throw XCTSkip("systemd-analyze is not installed (Tests/install-deps.sh installs it)")
        }
        for unit in units {
            // --threshold counts tenths: 30 is an exposure of 3.0.
            let run = try Command.run(["systemd-analyze", "security", "--offline=true", "--threshold=30", unitPath(unit)])
            let overall = (run.stdout + run.stderr).split(separator: "\n").first { $0.contains("Overall exposure level") } ?? "no overall line"
            XCTAssertEqual(run.status, 0, "\(unit): \(overall)")
            print("DeployUnitsTests: \(overall)")
        }
    }

    func testUnitsDropPrivilegesAndReloadOnHUP() throws {
        for unit in units {
            let text = try String(contentsOfFile: unitPath(unit), encoding: .utf8)
            let lines = Set(text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
            for required in ["CapabilityBoundingSet=", "NoNewPrivileges=yes", "ProtectSystem=strict", "LimitCORE=0"] {
                XCTAssertTrue(lines.contains(required), "\(unit) lacks \(required)")
            }
            XCTAssertTrue(lines.contains { $0.hasPrefix("SystemCallFilter=@system-service") }, "\(unit) has no system call filter")
            if unit != "keyserverd.service" {
                XCTAssertTrue(lines.contains { $0.hasPrefix("User=") && $0 != "User=root" }, "\(unit) runs as root")
            }
        }
        // keyserverd re-reads its root key and log level on SIGHUP; keydird and filesvc-server
        // have no reload (SIGHUP would end them), so their units must not send one.
        for unit in units {
            let text = try String(contentsOfFile: unitPath(unit), encoding: .utf8)
            XCTAssertEqual(text.contains("ExecReload=/bin/kill -HUP $MAINPID"), unit == "keyserverd.service", unit)
        }
    }
}

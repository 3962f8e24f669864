// Conformance: the classic interface files that ship with the system (libtirpc's
// rpcb_prot.x and crypt.x, rpcsvc-proto's /usr/include/rpcsvc/*.x, several of which need
// the C preprocessor) and our own edge-case file go through the xdrgen command, and the
// Swift it writes is compiled in Swift 6 mode with warnings as errors against the XDR,
// ONCRPC and NIO modules of this build.

import Foundation
import XCTest

final class ConformanceTests: XCTestCase {
    /// swiftc flags that make this build's modules importable.
    private func moduleFlags() throws -> [String] {
        let build = TestEnvironment.buildDirectory
        var flags = ["-I", build.appendingPathComponent("Modules").path]
        let fm = FileManager.default
        for entry in try fm.contentsOfDirectory(atPath: build.path) where entry.hasSuffix(".build") {
            let map = build.appendingPathComponent(entry).appendingPathComponent("module.modulemap")
            if fm.fileExists(atPath: map.path) { flags += ["-Xcc", "-fmodule-map-file=\(map.path)"] }
        }
        // C modules of dependencies that ship their own module maps (swift-atomics, …).
        var root = build
        while !fm.fileExists(atPath: root.appendingPathComponent("checkouts").path), root.path != "/" {
            root = root.deletingLastPathComponent()
        }
        let checkouts = root.appendingPathComponent("checkouts")
        for package in (try? fm.contentsOfDirectory(atPath: checkouts.path)) ?? [] {
            let sources = checkouts.appendingPathComponent(package).appendingPathComponent("Sources")
            for target in (try? fm.contentsOfDirectory(atPath: sources.path)) ?? [] {
                let include = sources.appendingPathComponent(target).appendingPathComponent("include")
                if fm.fileExists(atPath: include.appendingPathComponent("module.modulemap").path) {
                    flags += ["-Xcc", "-I\(include.path)"]
                }
            }
        }
        return flags
    }

    private func generate(_ input: String, into directory: URL, extra: [String] = []) throws -> URL {
        let name = URL(fileURLWithPath: input).deletingPathExtension().lastPathComponent
        let output = directory.appendingPathComponent("\(name).swift")
        let run = try runProcess(TestEnvironment.xdrgen.path, [input, "-o", output.path] + extra)
        XCTAssertEqual(run.status, 0, "xdrgen \(input): \(run.errors)")
        XCTAssertTrue(run.errors.isEmpty, "xdrgen \(input) printed: \(run.errors)")
        return output
    }

    private func compile(_ files: [URL], module: String, in directory: URL, flags: [String]) throws {
        let object = directory.appendingPathComponent("\(module).o").path
        let run = try runProcess("swiftc", ["-c", "-wmo", "-parse-as-library", "-swift-version", "6", "-warnings-as-errors",
                                            "-module-name", module, "-o", object] + flags + files.map(\.path))
        XCTAssertEqual(run.status, 0, "\(files.map(\.lastPathComponent)) did not compile:\n\(run.output)\(run.errors)")
    }

    func testSystemInterfaceFilesGenerateSwiftThatCompiles() throws {
        let rpcsvc = "/usr/include/rpcsvc"
        let listed = try FileManager.default.contentsOfDirectory(atPath: rpcsvc).filter { $0.hasSuffix(".x") }.sorted()
        // rpcsvc-proto ships 17 of them; fewer means the package is missing or changed.
        XCTAssertGreaterThanOrEqual(listed.count, 17, "expected the rpcsvc-proto .x files in \(rpcsvc)")
        let inputs = ["/usr/include/tirpc/rpc/rpcb_prot.x", "/usr/include/tirpc/rpcsvc/crypt.x"] + listed.map { "\(rpcsvc)/\($0)" }
        let directory = try TestEnvironment.temporaryDirectory("conformance")
        defer { try? FileManager.default.removeItem(at: directory) }
        let flags = try moduleFlags()
        var generated: [String: URL] = [:]
        for input in inputs where !input.hasSuffix("nis_callback.x") {
            generated[input] = try generate(input, into: directory)
        }
        for input in inputs where !input.hasSuffix("nis_callback.x") {
            let name = URL(fileURLWithPath: input).deletingPathExtension().lastPathComponent
            try compile([generated[input]!], module: "Check_\(name)", in: directory, flags: flags)
        }
        // nis_callback.x uses nis.x's types without including it (its C code gets them from
        // nis.h), so they are declared external and compiled together with nis.x's output.
        let callback = try generate("\(rpcsvc)/nis_callback.x", into: directory, extra: ["--external", "nis_object", "--external", "nis_error"])
        try compile([callback, generated["\(rpcsvc)/nis.x"]!], module: "Check_nis_callback", in: directory, flags: flags)
    }

    func testEdgeCasesAndInteropFixtureCompileWithoutWarnings() throws {
        let directory = try TestEnvironment.temporaryDirectory("edge")
        defer { try? FileManager.default.removeItem(at: directory) }
        let edge = directory.appendingPathComponent("edgecases.x")
        try FileManager.default.copyItem(
            at: TestEnvironment.packageRoot.appendingPathComponent("Tests/XDRGenTests/Fixtures/edgecases.x.txt"), to: edge)
        let flags = try moduleFlags()
        try compile([try generate(edge.path, into: directory)], module: "Check_edge", in: directory, flags: flags)
        let zoo = TestEnvironment.packageRoot.appendingPathComponent("Tests/XDRGenTests/Fixtures/typezoo.x").path
        try compile([try generate(zoo, into: directory, extra: ["--access", "internal"])], module: "Check_zoo", in: directory, flags: flags)
    }
}

// The fuzz package (Fuzz/, docs/FUZZING.md) compiles checked-in copies of what XDRGenPlugin
// generates, because a plugin's tool cannot be built under `--sanitize fuzzer`. This test
// keeps those copies honest: each `.x` file of a module that Fuzz/Modules mirrors must have
// its generated Swift there, byte for byte what xdrgen makes of it today. The fix when it
// fails: run Fuzz/regenerate.sh and commit the result.

import Foundation
import XCTest
import XDRGenCore

final class FuzzPackageSourcesTests: XCTestCase {
    private static let modules = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/Modules")

    func testCheckedInGeneratedSourcesAreCurrent() throws {
        let manager = FileManager.default
        var checked = 0
        for module in try manager.contentsOfDirectory(atPath: Self.modules.path).sorted() {
            let folder = Self.modules.appendingPathComponent(module)
            // Plugin-built modules are folders holding a `src` link to Sources/<module>.
            let link = folder.appendingPathComponent("src")
            guard (try? manager.destinationOfSymbolicLink(atPath: link.path)) != nil else { continue }
            let source = link.resolvingSymlinksInPath()
            let xFiles = (manager.enumerator(atPath: source.path)?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".x") }.sorted()
            let expected = Set(xFiles.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension + ".xdrgen.swift" })
            let present = Set(try manager.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".xdrgen.swift") })
            XCTAssertEqual(present, expected, "Fuzz/Modules/\(module): generated files do not match the .x files; run Fuzz/regenerate.sh")
            for x in xFiles {
                let path = source.appendingPathComponent(x).path
                let generated = try XDRGen.generate(
                    path: path, preprocessor: PreprocessorOptions(includeDirectories: [(path as NSString).deletingLastPathComponent])
                )
                let name = ((x as NSString).lastPathComponent as NSString).deletingPathExtension + ".xdrgen.swift"
                let checkedIn = try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
                XCTAssert(checkedIn == generated, "Fuzz/Modules/\(module)/\(name) is stale: run Fuzz/regenerate.sh")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 2, "keyserver.x and rpcsec_gss.x are mirrored")
    }
}

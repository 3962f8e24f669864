// Every Swift snippet in the README, docs/, the DocC articles, keyserver/ and Examples/ must be
// compiled code: this test finds each ```swift block and looks for its lines, in order and
// together, in a Swift file of the package (Sources/, Tests/, Examples/ and the manifests),
// which the test command builds. `import` lines and blank lines are left out of the
// comparison (a snippet's imports sit at the top of its file); indentation is ignored. A
// snippet edited without its compiled twin, or an API change that breaks the twin, fails
// here or in the build.

import Foundation
import XCTest

final class DocumentationSnippetTests: XCTestCase {
    struct Snippet {
        var file: String
        var line: Int
        var lines: [String]
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The Markdown files whose snippets a reader copies.
    static func documents() throws -> [URL] {
        var found = [root.appendingPathComponent("README.md"), root.appendingPathComponent("Examples/README.md")]
        for folder in ["docs", "keyserver", "Sources/SecureRPC/SecureRPC.docc", "deploy"] {
            let url = root.appendingPathComponent(folder)
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: url.path) else { continue }
            found += names.filter { $0.hasSuffix(".md") }.sorted().map { url.appendingPathComponent($0) }
        }
        return found
    }

    /// The ```swift blocks of a Markdown text, with the line each starts on.
    static func snippets(in text: String, file: String) -> [Snippet] {
        var result: [Snippet] = []
        var current: Snippet?
        for (index, raw) in text.components(separatedBy: "\n").enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if current == nil {
                if line == "```swift" { current = Snippet(file: file, line: index + 1, lines: []) }
            } else if line.hasPrefix("```") {
                result.append(current!)
                current = nil
            } else {
                current!.lines.append(line)
            }
        }
        return result
    }

    static func significant(_ lines: [String]) -> [String] {
        lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("import ") }
    }

    /// Every Swift file the build compiles (and the example package's manifest), as trimmed lines.
    static func compiledSources() throws -> [(path: String, lines: [String])] {
        var sources: [(String, [String])] = []
        for folder in ["Sources", "Tests", "Examples", "Fuzz"] {
            let url = root.appendingPathComponent(folder)
            guard let walker = FileManager.default.enumerator(at: url, includingPropertiesForKeys: nil) else { continue }
            for case let file as URL in walker {
                if file.lastPathComponent.hasPrefix(".build") { walker.skipDescendants(); continue }
                guard file.pathExtension == "swift" else { continue }
                let text = try String(contentsOf: file, encoding: .utf8)
                sources.append((file.path, significant(text.components(separatedBy: "\n"))))
            }
        }
        sources.append(("Package.swift", significant(try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
            .components(separatedBy: "\n"))))
        return sources
    }

    static func contains(_ haystack: [String], _ needle: [String]) -> Bool {
        guard !needle.isEmpty, needle.count <= haystack.count else { return needle.isEmpty }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if Array(haystack[start..<(start + needle.count)]) == needle { return true }
        }
        return false
    }

    func testEverySwiftSnippetIsCompiledCode() throws {
        let sources = try Self.compiledSources()
        var checked = 0
        for document in try Self.documents() {
            let text = try String(contentsOf: document, encoding: .utf8)
            let relative = String(document.path.dropFirst(Self.root.path.count + 1))
            for snippet in Self.snippets(in: text, file: relative) {
                let wanted = Self.significant(snippet.lines)
                checked += 1
                if !sources.contains(where: { Self.contains($0.lines, wanted) }) {
                    XCTFail("\(snippet.file):\(snippet.line): this Swift snippet is not in any compiled file; put it, word for word, in a function of a test (see Tests/SecureRPCTests/ReadmeSnippetTests.swift) or an example:\n\(wanted.joined(separator: "\n"))")
                }
            }
        }
        // README 6, XDRGEN 4, GSS 1, the DocC articles and Examples/README: if the walk finds
        // far fewer, it is looking in the wrong place and would pass for nothing.
        XCTAssertGreaterThanOrEqual(checked, 12)
    }

    func testTheCheckFindsAnEditedSnippet() throws {
        let sources = try Self.compiledSources()
        let markdown = "text\n```swift\nlet server = RPCServer(programs: [echo])\nlet typo = RPCServr()\n```\n"
        let snippet = Self.snippets(in: markdown, file: "x.md")
        XCTAssertEqual(snippet.count, 1)
        XCTAssertFalse(sources.contains(where: { Self.contains($0.lines, Self.significant(snippet[0].lines)) }))
        let good = Self.snippets(in: "```swift\nlet server = RPCServer(programs: [echo])\n```", file: "x.md")
        XCTAssertTrue(sources.contains(where: { Self.contains($0.lines, Self.significant(good[0].lines)) }))
    }
}

// The entry points the CLI, the build plugin and the tests share: parse (after cpp when
// needed), check, generate. Nothing is written unless the whole file is valid.

import Foundation

/// Generates Swift from RPC-language interface definitions (`.x` files).
///
/// ```swift
/// let swift = try XDRGen.generate(path: "echo.x")
/// try swift.write(toFile: "Echo.swift", atomically: true, encoding: .utf8)
/// ```
public enum XDRGen {
    /// Whether to run the C preprocessor first.
    public enum PreprocessMode: Sendable {
        /// Only when the file has `#` directives.
        case automatic
        case always
        case never
    }

    /// Parses and checks `text` (already preprocessed, or needing no preprocessing).
    public static func parse(text: String, file: String) throws(XDRGenError) -> Specification {
        let specification = try Parser.parse(text: text, file: file)
        _ = try SymbolTable(specification)
        return specification
    }

    /// Generates Swift for `text`; `file` names the source in errors and in the header.
    public static func generate(text: String, file: String, options: GeneratorOptions = GeneratorOptions()) throws(XDRGenError) -> String {
        let specification = try Parser.parse(text: text, file: file)
        var generator = try SwiftGenerator(specification: specification, options: options, sourceName: file)
        return try generator.generate()
    }

    /// Reads, preprocesses if needed, and generates Swift for the file at `path`.
    public static func generate(
        path: String,
        options: GeneratorOptions = GeneratorOptions(),
        preprocess: PreprocessMode = .automatic,
        preprocessor: PreprocessorOptions = PreprocessorOptions()
    ) throws(XDRGenError) -> String {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw XDRGenError("cannot read \(path): \(error.localizedDescription)", at: nil)
        }
        let useCpp: Bool
        switch preprocess {
        case .automatic: useCpp = Preprocessor.needsPreprocessing(text)
        case .always: useCpp = true
        case .never: useCpp = false
        }
        let input = useCpp ? try Preprocessor.run(path: path, options: preprocessor) : text
        let name = (path as NSString).lastPathComponent
        let specification = try Parser.parse(text: input, file: path)
        var generator = try SwiftGenerator(specification: specification, options: options, sourceName: name)
        return try generator.generate()
    }
}

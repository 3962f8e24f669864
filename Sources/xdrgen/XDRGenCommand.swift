// `xdrgen`: the command-line face of XDRGenCore, used directly by people who check the
// generated Swift in, and by the XDRGenPlugin build-tool plugin at build time. Writes the
// output only after the whole file generated without error, so a bad `.x` never leaves a
// half-written Swift file behind.

import ArgumentParser
import Release
import Foundation
import XDRGenCore

@main
struct XDRGenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xdrgen",
        abstract: "Generate Swift (XDR types, async clients, server protocols) from an ONC RPC interface definition (.x).",
        version: SecureRPCRelease.versionLine("xdrgen")
    )

    @Argument(help: "The .x file to read.")
    var input: String

    @Option(name: .shortAndLong, help: ArgumentHelp("Where to write the Swift file (default: standard output).", valueName: "file"))
    var output: String?

    @Flag(inversion: .prefixedNo, help: "Run the C preprocessor first (default: only if the file has # directives).")
    var cpp: Bool?

    @Option(name: .customShort("I"), help: ArgumentHelp("An include directory for the C preprocessor.", valueName: "dir"))
    var includeDirectories: [String] = []

    @Option(name: .customShort("D"), help: ArgumentHelp("A preprocessor definition (NAME or NAME=VALUE).", valueName: "symbol"))
    var definitions: [String] = []

    @Option(help: "Access level of the generated declarations: public or internal.")
    var access: GeneratorOptions.Access = .public

    @Option(help: "The cap on unbounded (<>) strings, opaques, arrays and lists.")
    var unboundedMaximum: Int = 1 << 20

    @Option(help: "The name of the enum holding the file's constants.")
    var constantsNamespace: String?

    @Option(name: .customLong("external"), help: ArgumentHelp("A type the file uses but does not define; the Swift code expects an XDRCodable type of its UpperCamelCase name.", valueName: "type"))
    var externalTypes: [String] = []

    func run() throws {
        let mode: XDRGen.PreprocessMode = cpp.map { $0 ? .always : .never } ?? .automatic
        let swift: String
        do {
            swift = try XDRGen.generate(
                path: input,
                options: GeneratorOptions(access: access, unboundedMaximum: unboundedMaximum, constantsNamespace: constantsNamespace, externalTypes: externalTypes),
                preprocess: mode,
                preprocessor: PreprocessorOptions(includeDirectories: includeDirectories, definitions: definitions)
            )
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode.failure
        }
        if let output {
            try swift.write(toFile: output, atomically: true, encoding: .utf8)
        } else {
            FileHandle.standardOutput.write(Data(swift.utf8))
        }
    }
}

extension GeneratorOptions.Access: ExpressibleByArgument {}

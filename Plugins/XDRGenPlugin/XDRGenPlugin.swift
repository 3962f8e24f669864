// Build-tool plugin: for every `.x` file in a target, run `xdrgen` at build time and
// compile the Swift it writes into the plugin's work directory. SwiftPM reruns a command
// only when its `.x` input (or xdrgen itself) changes. Included files (`#include "x.x"`)
// are not tracked as inputs; touch the including file after editing them.

import Foundation
import PackagePlugin

@main
struct XDRGenPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let tool = try context.tool(named: "xdrgen")
        return target.sourceFiles(withSuffix: "x").map { file in
            let stem = file.url.deletingPathExtension().lastPathComponent
            let output = context.pluginWorkDirectoryURL.appending(path: "\(stem).xdrgen.swift")
            return .buildCommand(
                displayName: "Generating Swift from \(file.url.lastPathComponent)",
                executable: tool.url,
                arguments: [file.url.path, "-o", output.path, "-I", file.url.deletingLastPathComponent().path],
                inputFiles: [file.url],
                outputFiles: [output]
            )
        }
    }
}

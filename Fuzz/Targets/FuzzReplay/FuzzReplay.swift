// Replay mode of the fuzz executables: in a normal build (without -DFUZZING) each
// `fuzz-FAMILY` runs its family's fuzz body over the files it is given, and over every file
// in the folders it is given. That is how a crasher is reproduced under a debugger and how a
// corpus is checked outside the test suite. Trusts nothing in the files: they go to the
// fuzz body as they are.

import Foundation

public enum FuzzReplay {
    /// Runs `body` over each input named on the command line; exits 2 without any.
    public static func main(_ tool: String, _ body: (UnsafeRawBufferPointer) -> Void) -> Never {
        let paths = CommandLine.arguments.dropFirst()
        guard !paths.isEmpty else {
            FileHandle.standardError.write(Data("usage: \(tool) FILE|DIR...  (replays inputs; docs/FUZZING.md tells how to fuzz)\n".utf8))
            exit(2)
        }
        var count = 0
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("\(tool): no such file: \(path)\n".utf8))
                exit(1)
            }
            let files = isDirectory.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { "\(path)/\($0)" }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else {
                    FileHandle.standardError.write(Data("\(tool): cannot read \(file)\n".utf8))
                    exit(1)
                }
                data.withUnsafeBytes { body($0) }
                count += 1
            }
        }
        print("\(tool): \(count) inputs replayed, no failure")
        exit(0)
    }
}

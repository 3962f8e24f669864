// Replay mode of rpcfuzz (normal builds): runs the fuzz body over files, which is how
// crashers are reproduced. Under FUZZING, libFuzzer provides `main` instead.
#if !FUZZING
@_spi(Fuzzing) import ONCRPC
import Foundation

@main
enum Replay {
    static func main() {
        let files = CommandLine.arguments.dropFirst()
        if files.isEmpty {
            FileHandle.standardError.write(Data("usage: rpcfuzz FILE...  (replays inputs; see docs/FUZZING.md to fuzz)\n".utf8))
            exit(2)
        }
        for path in files {
            guard let data = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("rpcfuzz: cannot read \(path)\n".utf8))
                exit(1)
            }
            data.withUnsafeBytes { DecoderFuzzing.run($0) }
            print("\(path): ok")
        }
    }
}
#endif

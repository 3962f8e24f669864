// `fuzz-oncrpc`: the libFuzzer entry point for the RPC message, AUTH_SYS, rpcbind and record-marking decoders (docs/FUZZING.md).
// Built with `-DFUZZING` under `swift build --sanitize fuzzer`, libFuzzer supplies `main`
// and calls this for every input; in a normal build it is a replay tool (`fuzz-oncrpc FILE|DIR...`).
// The body, and what it checks, lives in ONCRPC so that the main test suite replays the
// same code over Tests/Fuzz/corpus.

@_spi(Fuzzing) import ONCRPC

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    DecoderFuzzing.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
import FuzzReplay

@main
enum Replay {
    static func main() {
        FuzzReplay.main("fuzz-oncrpc", DecoderFuzzing.run)
    }
}
#endif

// `fuzz-keyserver`: the libFuzzer entry point for the keyserver's KEY_PROG and SRPC_KEYX argument decoders (docs/FUZZING.md).
// Built with `-DFUZZING` under `swift build --sanitize fuzzer`, libFuzzer supplies `main`
// and calls this for every input; in a normal build it is a replay tool (`fuzz-keyserver FILE|DIR...`).
// The body, and what it checks, lives in KeyServer so that the main test suite replays the
// same code over Tests/Fuzz/corpus.

@_spi(Fuzzing) import KeyServer

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    KeyServerDecoderFuzzing.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
import FuzzReplay

@main
enum Replay {
    static func main() {
        FuzzReplay.main("fuzz-keyserver", KeyServerDecoderFuzzing.run)
    }
}
#endif
